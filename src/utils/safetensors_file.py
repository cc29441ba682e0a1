"""A safetensors file checked before anything loads it: a truncated or foreign file is one line naming it, not a
SafetensorError traceback from deep inside a loader."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def safetensors_problem(path: Path) -> str | None:
    """A truncated or corrupt safetensors file, checked from its header: 8-byte length, JSON, data extent."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                return f"{path}: truncated (header of {n} bytes in a {size}-byte file)"
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as e:
        return f"{path}: unreadable ({e})"
    try:
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, TypeError, IndexError):
        return f"{path}: not a safetensors file (its header is not a tensor table)"
    if 8 + n + end > size:
        return f"{path}: truncated ({size} bytes, the header needs {8 + n + end})"
    return None
