"""The run screen freezes what is alive as each round starts (a full garbage collection at
100 agents stalled the screen); the cyclic garbage a freeze caught is collected as the next
run starts, not as a run's result appears (acausal_tui/screens/engine_screen.py)."""

import gc
import weakref

from tests.tui.conftest import SIZE, HeldProvider, wait_until


class Node:
    pass


def frozen_garbage() -> weakref.ref:
    """A reference cycle nothing else points to, caught by a freeze as a round's start does."""
    node = Node()
    node.me = node
    ref = weakref.ref(node)
    del node
    gc.freeze()
    return ref


async def test_garbage_frozen_by_a_run_is_kept_at_its_end_and_collected_as_the_next_starts(run_app):
    try:
        held = HeldProvider(seed=1, hold_from=2)
        first = run_app(held, agents=3, rounds=2)
        async with first.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: held.held > 0)
            caught = frozen_garbage()  # as the rounds' freezes catch garbage
            held.release()
            await first.workers.wait_for_complete()
            await pilot.pause(0.3)  # the result drawn
            gc.collect()  # an ordinary collection never reaches frozen objects
            assert first.status == "completed" and caught() is not None

        second = run_app(agents=3, rounds=1)
        async with second.run_test(size=SIZE) as pilot:
            await second.workers.wait_for_complete()
            assert second.status == "completed"
            assert caught() is None
    finally:
        gc.unfreeze()
