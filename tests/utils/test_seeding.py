"""Seeds derived from names: pinned numbers, since every upcycled layer's init draws from them."""

from __future__ import annotations

import hashlib

from src.utils.seeding import name_seed


def test_name_seed_is_the_sha1_of_the_parts_joined_by_colons():
    assert name_seed(0, "encoder.layers.0") == 203863328305594
    assert name_seed("cluster", "decoder.layers.1") == 110987864558283
    assert name_seed(7, "x") == int(hashlib.sha1(b"7:x").hexdigest()[:12], 16)
    assert name_seed(1, "a") != name_seed(2, "a") != name_seed(1, "b")
