"""Key-to-screen time on the run screen when every strategy reply is 1 MB, with the drawn
text capped (acausal_tui/widgets/text.py MAX_RENDER_CHARS) and uncapped, beside short
replies as the baseline.

    .venv/bin/python bench/bench_big_reply.py

Prints the median and worst time of a `]` (next agent) press until the screen has settled."""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acausal_tui.app import AcausalApp, experiment_runner  # noqa: E402
from acausal_tui.widgets import text  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.providers.base import ChatRequest  # noqa: E402
from engine.runner import with_seed  # noqa: E402
from tests.support.fakes import FakeProvider  # noqa: E402

HUGE = "word " * 200_000
SHORT = "word " * 50
PRESSES = 10


async def trial(limit: int, reply: str) -> list[float]:
    def answer(request: ChatRequest) -> str:
        return f"{reply}\nSTRATEGY: cooperate first" if request.key.startswith("strategy/") else "COOPERATE"

    text.literal.__defaults__ = ("", limit)
    with tempfile.TemporaryDirectory() as tmp:
        config = with_seed(load_config(None, {"agents": 4, "rounds": 1, "seed": 1, "results_dir": tmp}, env={}))
        app = AcausalApp(run=experiment_runner(config, FakeProvider(answer)), results_dir=Path(tmp))
        times = []
        async with app.run_test(size=(120, 40)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            for _ in range(PRESSES):
                start = time.perf_counter()
                await pilot.press("right_square_bracket")
                await pilot.pause()
                times.append(time.perf_counter() - start)
        return times


def main() -> None:
    cases = (
        ("short replies", text.MAX_RENDER_CHARS, SHORT),
        ("1 MB, capped", text.MAX_RENDER_CHARS, HUGE),
        ("1 MB, uncapped", 10**9, HUGE),
    )
    for name, limit, reply in cases:
        times = asyncio.run(trial(limit, reply))
        print(
            f"{name:15} key-to-screen median {statistics.median(times):.3f} s, worst {max(times):.3f} s "
            f"({PRESSES} presses)"
        )


if __name__ == "__main__":
    main()
