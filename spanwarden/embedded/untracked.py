"""Span records out of the cyclic garbage collector's sight.

A `SpanRecord` holds only strings, numbers and a tuple of strings, so it can never be part of a reference
cycle; CPython already stops tracking such plain tuples at their first collection, but not instances of a
tuple subclass (a NamedTuple), so every record the service holds (those waiting out the lateness bound, about
a second's spans) was visited by every young collection: at 5,000 agents the records were nine tenths of
what a generation-1 pass looked at, and those passes held the event loop 10-65 ms each, several a second
(measured with a GC callback during `spanwarden bench soak`). Untracking a record does not change when it is
freed (reference counting frees it, as before); it only spares the collector the walk over its 38 fields.

`PyObject_GC_UnTrack` is CPython's public C API (safe on an object already untracked, which tuple
deallocation relies on); where it is not available (another interpreter) this does nothing."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable

_untrack: Callable[[object], None] | None
try:
    _untrack = ctypes.pythonapi.PyObject_GC_UnTrack  # a PyDLL call: the GIL stays held, as it must
    _untrack.argtypes = [ctypes.py_object]  # type: ignore[union-attr]
    _untrack.restype = None  # type: ignore[union-attr]
except (AttributeError, OSError):  # not CPython
    _untrack = None


def untrack(records: Iterable[tuple[object, ...]]) -> None:
    """Stop the collector tracking each record (records of atomic fields only: strings, numbers, tuples of
    strings; a record holding a container could then leak a cycle through it)."""
    if _untrack is not None:
        for record in records:
            _untrack(record)
