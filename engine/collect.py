"""How often Python's cyclic garbage collector runs while experiments run.

CPython collects its young generation whenever tracked containers allocated minus those
freed pass a threshold (700 by default). A run keeps every call in flight alive (its task,
prompt, request and reply objects: thousands at 128 slots), so at the default each
young collection, every few calls, walks them all and moves them on to be walked again in
the next generation: ~40 ms of collector per 10 x 10 run on the test machine, most of it
in the bursts of calls, against ~4 ms with a threshold of 10,000. Garbage in cycles waits
at most that many allocations longer; the thresholds are restored when the last
concurrent run ends."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000

_running = 0
_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The young generation's threshold raised to YOUNG_THRESHOLD (never lowered, never
    turned on when 0) while any run is inside; what it was is restored after the last, even
    if other code changed it meanwhile."""
    global _running, _saved
    if _running == 0:
        _saved = gc.get_threshold()  # type: ignore[assignment]
        if _saved[0]:  # 0: automatic collection is off, and stays off
            gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), *_saved[1:])
    _running += 1
    try:
        yield
    finally:
        _running -= 1
        if _running == 0:
            gc.set_threshold(*_saved)
