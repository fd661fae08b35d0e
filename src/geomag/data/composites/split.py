"""The one train / held-out rule of the composites: a stable hash, never Python's salted hash()."""

from __future__ import annotations

import hashlib

SPLITS = ("train", "heldout")
HELDOUT_SHARE = 0.2


def split_of_key(key: str, share: float = HELDOUT_SHARE) -> str:
    """'heldout' for a fixed `share` of keys (by SHA-1), else 'train'."""
    h = int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "big") / 2**32
    return "heldout" if h < share else "train"
