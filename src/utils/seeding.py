"""One seed for Python's, NumPy's and torch's generators, and seeds derived from names."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def name_seed(*parts: object) -> int:
    """A 48-bit seed from ``parts`` joined by ':' (e.g. a run seed and a layer name): the same in every process
    and Python version, which the salted built-in hash() is not."""
    text = ":".join(str(p) for p in parts)
    return int(hashlib.sha1(text.encode()).hexdigest()[:12], 16)
