"""CPU cost of one model call on the real-provider path (gateway + limiter + OpenAI-compatible
client + httpx) against the local stub server at 0 ms latency, in its own process.
Prints figures; asserts nothing.

    .venv/bin/python bench/bench_percall.py [--calls 3000] [--concurrency 64]

Used to decide on `sniffio` as a dependency: without it, httpcore's `import sniffio`
inside every lock creation fails and walks the whole import path each time. Run it once
with and once without sniffio installed and compare the CPU per call."""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import stub_process  # noqa: E402
from engine.calls import CallGateway  # noqa: E402
from engine.config import ProviderSettings  # noqa: E402
from engine.control import RunControl  # noqa: E402
from engine.limits import Limiter  # noqa: E402
from engine.providers.base import ChatRequest, Message  # noqa: E402
from engine.providers.openai_compat import OpenAICompatProvider  # noqa: E402


async def bench(args: argparse.Namespace) -> None:
    with stub_process(0) as url:
        settings = ProviderSettings(name="openai", base_url=url, api_key_env=None,
                                    max_concurrency=args.concurrency)
        provider = OpenAICompatProvider(settings, api_key=None)
        gateway = CallGateway(provider, RunControl(), seed=1, limiter=Limiter(None, args.concurrency))
        prompt = "You are playing prisoner's dilemma.\n\nDecision (COOPERATE/DEFECT):"

        async def one(i: int) -> None:
            await gateway.call(ChatRequest(key=f"k{i}", model="m", messages=[Message("user", prompt)],
                                           temperature=0.3, max_tokens=100))

        await one(-1)  # warm-up: connection, imports
        cpu, wall = time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(args.calls):
                tg.start_soon(one, i)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await provider.aclose()
    sniffio = "installed" if importlib.util.find_spec("sniffio") else "NOT installed"
    print(f"{args.calls} calls, concurrency {args.concurrency}, sniffio {sniffio}: "
          f"CPU {1e6 * cpu / args.calls:.0f} us/call, wall {1e6 * wall / args.calls:.0f} us/call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    anyio.run(bench, parser.parse_args())


if __name__ == "__main__":
    main()
