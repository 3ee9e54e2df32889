"""Whether a script may reach Postman's legacy script API.

Before each script, Postman's sandbox sets up the legacy globals (``tests``,
``responseBody``, ``postman.setEnvironmentVariable``, lodash 3 as ``_``,
liquid-json as ``JSON`` ...): it builds a plain copy of the request and
response and wraps each global in a deprecation-warning proxy, then turns the
``tests`` object into assertions after the script. Its ``disableLegacyAPIs``
option skips all of that. A script is given that option only when its text
cannot name a legacy global: it names none of them as an identifier other
than a property (``pm.environment`` is not the legacy ``environment``), does
not use ``this`` (the sandbox's ``this`` holds the globals) or ``eval``, and
has no escape sequence that could spell an identifier. Anything else, comments
and strings included, keeps the legacy API: a false alarm costs a little time,
a miss would break a script.
"""

from __future__ import annotations

import re
from functools import lru_cache

# postman-sandbox's LEGACY_GLOBS, what its legacy setup adds besides them
# (liquid-json as JSON), and what can reach them without naming them.
LEGACY_NAMES = (
    "tests",
    "globals",
    "environment",
    "data",
    "request",
    "responseCookies",
    "responseHeaders",
    "responseTime",
    "responseCode",
    "responseBody",
    "iteration",
    "postman",
    "_",
    "CryptoJS",
    "tv4",
    "xml2Json",
    "Backbone",
    "cheerio",
    "JSON",
    "this",
    "eval",
)
_NAMED = re.compile(r"(?<![\w$])(?:" + "|".join(map(re.escape, LEGACY_NAMES)) + r")(?![\w$])")
# \u0074ests is the identifier `tests`.
_ESCAPE = re.compile(r"\\u")


@lru_cache(maxsize=512)  # a run's scripts come back with every request
def uses_legacy_api(source: str) -> bool:
    """Whether ``source`` may use a legacy global (so the sandbox must set them up).

    Parameters:
        source: the script's JavaScript.
    """
    if _ESCAPE.search(source):
        return True
    for match in _NAMED.finditer(source):
        start = match.start()
        # `a.tests` reads a property; `...tests` spreads the global.
        is_property = start > 0 and source[start - 1] == "." and source[start - 3 : start] != "..."
        if not is_property:
            return True
    return False
