"""The collection model: a Postman collection (v2.0/v2.1) as typed objects.

Requests, auth and scripts stay close to Postman's JSON (plain dicts), since
the sandbox and the reports speak that JSON; the tree around them (folders,
inheritance of auth, scripts and protocol-profile behaviour) is typed here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pmrunner.errors import CollectionFormatError

JSON = dict[str, Any]


def _stable_id(*parts: str) -> str:
    """An id for a node that has none, the same every time the collection is read.

    Distributed runs parse a collection in several processes; their ids must agree.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "pmrunner:" + "/".join(parts)))


def script_source(event: JSON) -> str:
    """The source text of an event's script (``exec`` is a string or a list of lines)."""
    script = event.get("script") or {}
    source = script.get("exec", "")
    if isinstance(source, list):
        return "\n".join(str(line) for line in source)
    return str(source or "")


@dataclass(frozen=True)
class Script:
    """One script of an event, with the node it belongs to (for reports)."""

    listen: str  # "prerequest" or "test"
    source: str
    owner_id: str
    event: JSON


@dataclass
class Node:
    """What collections, folders and requests share."""

    id: str
    name: str
    events: list[JSON] = field(default_factory=list)
    auth: JSON | None = None
    protocol_profile_behavior: JSON = field(default_factory=dict)
    description: str = ""
    network: str | None = None  # a pinned network (pmrunner extension)

    def scripts(self, listen: str) -> list[Script]:
        found = []
        for event in self.events:
            if event.get("listen") != listen or event.get("disabled"):
                continue
            source = script_source(event)
            if source.strip():
                found.append(Script(listen, source, self.id, event))
        return found


@dataclass
class Item(Node):
    """A request item, with the chain of folders above it."""

    request: JSON = field(default_factory=dict)
    responses: list[JSON] = field(default_factory=list)
    parents: tuple[Node, ...] = ()  # collection first, then folders, outermost first

    @property
    def path(self) -> tuple[str, ...]:
        """Folder names from the collection down (the collection itself excluded)."""
        return tuple(parent.name for parent in self.parents[1:])

    @property
    def lineage(self) -> tuple[Node, ...]:
        return (*self.parents, self)

    def inherited_auth(self) -> JSON | None:
        """The auth the folders and collection above give this item.

        Postman stores ``{"type": "inherit"}`` or no auth for "inherit from
        parent", and ``{"type": "noauth"}`` to stop inheritance.
        """
        for node in reversed(self.parents):
            auth = node.auth
            if auth and auth.get("type") not in (None, "inherit"):
                return None if auth.get("type") == "noauth" else auth
        return None

    def effective_behavior(self) -> JSON:
        """Protocol-profile behaviour merged from the collection down to the item."""
        merged: JSON = {}
        for node in self.lineage:
            merged.update(node.protocol_profile_behavior)
        return merged

    def effective_network(self) -> str | None:
        for node in reversed(self.lineage):
            if node.network:
                return node.network
        return None

    def script_chain(self, listen: str) -> list[Script]:
        """Scripts of one kind in Postman's order: collection, folders, request."""
        return [script for node in self.lineage for script in node.scripts(listen)]


@dataclass
class Folder(Node):
    children: list[Item | Folder] = field(default_factory=list)


@dataclass
class Collection(Node):
    """A whole collection: its info, variables and tree of folders and items."""

    schema: str = ""
    variables: list[JSON] = field(default_factory=list)
    children: list[Item | Folder] = field(default_factory=list)
    raw: JSON = field(default_factory=dict, repr=False)

    def has_scripts(self) -> bool:
        """Whether any script would run: of the collection, a folder or a request."""
        return any(
            item.script_chain("prerequest") or item.script_chain("test") for item in self.items()
        )

    def items(self) -> Iterator[Item]:
        """Every request item, depth first, in collection order."""
        yield from _walk(self.children)

    def folders(self) -> Iterator[Folder]:
        stack: list[Item | Folder] = list(reversed(self.children))
        while stack:
            node = stack.pop()
            if isinstance(node, Folder):
                yield node
                stack.extend(reversed(node.children))

    def select(self, names: list[str]) -> list[Item]:
        """Items under the folders (or items) named, in collection order.

        Raises ``CollectionFormatError`` naming any folder that does not exist.
        """
        if not names:
            return list(self.items())
        chosen: list[Item] = []
        seen: set[str] = set()
        for name in names:
            matched = [f for f in self.folders() if name in (f.name, f.id)]
            items = [i for f in matched for i in _walk(f.children)]
            items += [i for i in self.items() if name in (i.name, i.id)]
            if not matched and not items:
                raise CollectionFormatError(f"folder or request {name!r} is not in the collection")
            for item in items:
                if item.id not in seen:
                    seen.add(item.id)
                    chosen.append(item)
        order = {item.id: n for n, item in enumerate(self.items())}
        return sorted(chosen, key=lambda item: order[item.id])

    def find(self, id_or_name: str) -> Item | None:
        """An item by id, or else by name (Postman's ``setNextRequest`` lookup)."""
        items = list(self.items())
        for item in items:
            if item.id == id_or_name:
                return item
        for item in items:
            if item.name == id_or_name:
                return item
        return None


def _walk(children: list[Item | Folder]) -> Iterator[Item]:
    for child in children:
        if isinstance(child, Folder):
            yield from _walk(child.children)
        else:
            yield child


def _objects(value: Any) -> list[JSON]:
    """The objects of a list; anything else holds none (as Postman ignores it)."""
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _object(value: Any) -> JSON:
    """A copy of an object; anything else is an empty one (as Postman ignores it)."""
    return dict(value) if isinstance(value, dict) else {}


def _auth(value: Any) -> JSON | None:
    return value if isinstance(value, dict) else None


def _network(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _node_fields(raw: JSON, default_name: str, position: str) -> JSON:
    return {
        "id": str(raw.get("id") or raw.get("_postman_id") or _stable_id(position)),
        "name": str(raw.get("name") or default_name),
        "events": _objects(raw.get("event")),
        "protocol_profile_behavior": _object(raw.get("protocolProfileBehavior")),
        "description": _description(raw.get("description")),
        "network": _network(raw.get("x-pmrunner-network")),
    }


def _description(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return str(value or "")


def _parse_children(raw_items: Any, parents: tuple[Node, ...]) -> list[Item | Folder]:
    """Folders and items under ``parents[-1]``; nodes without ids get stable ones."""
    if raw_items is None:
        return []
    if not isinstance(raw_items, list):
        raise CollectionFormatError("'item' must be a list")
    children: list[Item | Folder] = []
    for index, raw in enumerate(raw_items):
        position = f"{parents[-1].id}/{index}"
        if not isinstance(raw, dict):
            raise CollectionFormatError("every entry of 'item' must be an object")
        if "item" in raw and "request" not in raw:
            folder = Folder(**_node_fields(raw, "Folder", position), auth=_auth(raw.get("auth")))
            folder.children = _parse_children(raw["item"], (*parents, folder))
            children.append(folder)
        else:
            request = raw.get("request")
            if isinstance(request, str):  # v2 allows a bare URL
                request = {"url": request, "method": "GET"}
            if not isinstance(request, dict):
                name = raw.get("name", "?")
                raise CollectionFormatError(f"item {name!r} has no request")
            children.append(
                Item(
                    **_node_fields(raw, "Request", position),
                    request=request,
                    responses=_objects(raw.get("response")),
                    parents=parents,
                )
            )
    return children


def parse_collection(data: JSON) -> Collection:
    """Build a ``Collection`` from v2.0/v2.1 JSON (already unwrapped and upgraded).

    ``info`` is optional, as for newman; wrong types in optional fields
    (``event``, ``variable``, ``protocolProfileBehavior``, ``auth``) count
    as absent, as Postman's collection SDK ignores them.
    """
    if not isinstance(data, dict):
        raise CollectionFormatError("not a Postman collection: expected a JSON object")
    # newman runs a collection without an ``info`` object (or with one that is not an
    # object): its items still run, under a default name.
    info = _object(data.get("info"))
    if "info" in data and not isinstance(data["info"], dict):
        data = {**data, "info": info}  # what reads the raw collection finds an object too
    name = str(info.get("name") or "Collection")
    fields = _node_fields({**info, "event": data.get("event")}, "Collection", "collection/" + name)
    fields["id"] = str(info.get("_postman_id") or info.get("id") or fields["id"])
    fields["protocol_profile_behavior"] = _object(data.get("protocolProfileBehavior"))
    fields["network"] = _network(data.get("x-pmrunner-network"))
    collection = Collection(
        **fields,
        auth=_auth(data.get("auth")),
        schema=str(info.get("schema") or ""),
        variables=_objects(data.get("variable")),
        raw=data,
    )
    collection.children = _parse_children(data.get("item"), (collection,))
    return collection
