"""Randomness keyed by *what* is being decided, never by call order.

Every random choice in an experiment comes from `keyed_rng(seed, *key)`, so two runs with
the same seed make the same choices however their tasks interleave.
"""

import hashlib
import random


def keyed_seed(seed: int, *key: object) -> int:
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def keyed_rng(seed: int, *key: object) -> random.Random:
    return random.Random(keyed_seed(seed, *key))
