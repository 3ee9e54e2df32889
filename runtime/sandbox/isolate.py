"""A V8 isolate evaluated from the calling thread, with a deadline of our own.

mini-racer's ``MiniRacer.eval`` goes through an asyncio loop on a thread of
its own: an evaluation crosses four threads (caller, loop, V8, loop, caller)
and costs a few tenths of a millisecond before V8 does anything. Here the
caller hands the evaluation straight to the isolate's V8 thread through
mini-racer's C API and waits for the answer on a queue that V8's result
callback fills: two thread switches. Several evaluations can be handed over
at once: V8 runs them one after another, with a microtask checkpoint
between each two, and the caller wakes once for all of them.

The deadline is ours: when it passes, the evaluations still pending are
cancelled (V8 terminates what runs) and ``TimeoutError`` is raised; the
owner then closes the isolate.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Sequence
from itertools import count
from typing import TYPE_CHECKING, Any

from py_mini_racer._context import Context
from py_mini_racer._dll import init_mini_racer, mr_callback_func
from py_mini_racer._objects import ObjectFactoryImpl, _MiniRacerTypes

if TYPE_CHECKING:
    from py_mini_racer._types import JSObject
    from py_mini_racer._value_handle import RawValueHandleType, ValueHandle

_loop_lock = threading.Lock()
_idle_loop: asyncio.AbstractEventLoop | None = None


def _never_used_loop() -> asyncio.AbstractEventLoop:
    """The loop mini-racer's ``Context`` wants: never run, as no callback goes to it."""
    global _idle_loop
    with _loop_lock:
        if _idle_loop is None:
            _idle_loop = asyncio.new_event_loop()
        return _idle_loop


class Isolate:
    """One V8 isolate with one context (mini-racer's), evaluated synchronously.

    Not thread-safe by itself: its owner serialises evaluations.
    """

    def __init__(self) -> None:
        self._dll = init_mini_racer(ignore_duplicate_init=True)
        self._results: queue.SimpleQueue[tuple[int, ValueHandle]] = queue.SimpleQueue()
        self._ids = count(1)

        # Called on V8's thread with every result: only hand it over.
        @mr_callback_func
        def on_result(callback_id: int, raw_val_handle: RawValueHandleType) -> None:
            self._results.put((callback_id, self._context._wrap_raw_handle(raw_val_handle)))

        self._on_result = on_result  # kept alive as long as the isolate
        self._handle = self._dll.mr_init_context(on_result)
        self._context = Context(
            self._dll, self._handle, _never_used_loop(), ObjectFactoryImpl(), count(1)
        )
        self.closed = False

    def set_memory_limit(self, limit_bytes: int) -> None:
        """The heap size past which V8 terminates the evaluation (JSOOMException)."""
        self._dll.mr_set_hard_memory_limit(self._handle, limit_bytes)

    def heap_size(self) -> int:
        """Bytes the V8 heap holds now, live objects and garbage alike."""
        return int(json.loads(self._context.heap_stats())["total_heap_size"])

    def collect_garbage(self) -> None:
        """Collect every generation and give the heap's free pages back to the system."""
        self._context.low_memory_notification()

    def eval(self, code: str, deadline: float) -> Any:
        """Evaluate ``code``; its value converted as mini-racer converts it."""
        return self.eval_all([code], deadline)[-1]

    def eval_all(self, codes: Sequence[str], deadline: float) -> list[Any]:
        """Evaluate each of ``codes`` in turn (promise jobs run between two); their values.

        deadline: ``time.monotonic()`` by which every evaluation must have
            ended; past it, TimeoutError (the isolate should then be closed).
        Raises mini-racer's JSEvalException subclasses for an evaluation that
        threw, ran out of memory or was terminated (the first one, in order).
        """
        if self.closed:
            raise RuntimeError("the isolate is closed")
        sources = [self._context._python_to_value_handle(code) for code in codes]
        pending: dict[int, int] = {}  # callback id -> task id
        order: list[int] = []
        for source in sources:
            callback_id = next(self._ids)
            order.append(callback_id)
            pending[callback_id] = self._dll.mr_eval(self._handle, source.raw, callback_id)
        answers: dict[int, ValueHandle] = {}
        while pending:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                callback_id, value = self._results.get(timeout=remaining)
            except queue.Empty:
                for task in pending.values():
                    self._dll.mr_cancel_task(self._handle, task)
                raise TimeoutError from None
            if pending.pop(callback_id, None) is not None:
                answers[callback_id] = value
        del sources  # V8 has read every source
        return [self._context._value_handle_to_python(answers[key]) for key in order]

    def set_text(self, holder: JSObject, key: str, utf8: bytes) -> None:
        """``holder[key] =`` the JavaScript string whose UTF-8 is ``utf8``.

        The bytes go to V8 as they are: no Python copy, no JSON escaping, no
        source for V8 to parse. Call it between evaluations only.
        """
        context = self._context
        key_handle = context._python_to_value_handle(key)
        holder_handle = context._python_to_value_handle(holder)
        value = context._wrap_raw_handle(
            self._dll.mr_alloc_string_val(self._handle, utf8, len(utf8), _MiniRacerTypes.str_utf8)
        )
        outcome = self._dll.mr_set_object_item(
            self._handle, holder_handle.raw, key_handle.raw, value.raw
        )
        context._value_handle_to_python(context._wrap_raw_handle(outcome))  # raises V8's error

    def close(self) -> None:
        """Free the isolate, terminating whatever still runs in it."""
        if not self.closed:
            self.closed = True
            self._dll.mr_free_context(self._handle)
