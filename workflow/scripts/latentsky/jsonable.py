"""One conversion to plain JSON values, for summaries, store attributes and checkpoints."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def plain(value: Any, where: str = "value") -> Any:
    """``value`` with NumPy numbers and arrays turned into Python ones, recursively.

    Mapping keys become strings, tuples become lists, and NaN and infinities become None, so the
    result is strict JSON (``json.dumps(..., allow_nan=False)``) and loads with
    ``torch.load(weights_only=True)``. Anything else raises TypeError naming ``where``.
    """
    if isinstance(value, dict):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, where) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{where}: cannot store a {type(value).__name__} as JSON")
