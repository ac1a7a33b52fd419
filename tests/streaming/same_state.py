"""Comparing agent states and audit data across runs that should agree."""

from __future__ import annotations

import math
from typing import Any


def assert_same_state(got: Any, want: Any, path: str = "") -> None:
    """Equal, but for the last bits of floats: a restored histogram applies its pending decay in one step
    where the uninterrupted one applied it in several."""
    assert type(got) is type(want), path
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for key in want:
            assert_same_state(got[key], want[key], f"{path}/{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_state(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (path, got, want)
    else:
        assert got == want, path
