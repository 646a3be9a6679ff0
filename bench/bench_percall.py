"""CPU cost of one model call on the real-provider path (gateway + limiter + OpenAI-compatible
client + HTTP stack) against the local stub server at 0 ms latency, in its own process.
Prints figures; asserts nothing.

    .venv/bin/python bench/bench_percall.py [--calls 3000] [--concurrency 64] [--trials 3] [--tls]

Per call, over each trial's calls (median and range over the trials): the client's user
and system CPU (system time includes the kernel's loopback TCP work for the client's
sends), the stub server's CPU (its own process; on a 2-core machine it competes with the
client), and wall time. `--tls` runs the stub behind TLS (a throwaway certificate
authority made for the run, trusted through the provider's SSL context)."""

import argparse
import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Clock, median_range, stub_server_process  # noqa: E402
from engine.calls import CallGateway  # noqa: E402
from engine.config import Price, ProviderSettings  # noqa: E402
from engine.control import RunControl  # noqa: E402
from engine.limits import Limiter  # noqa: E402
from engine.providers.base import ChatRequest, Message  # noqa: E402
from engine.providers.httpclient import PooledTransport, SharedClient  # noqa: E402
from engine.providers.openai_compat import OpenAICompatProvider  # noqa: E402

PROMPT = "You are playing prisoner's dilemma.\n\nDecision (COOPERATE/DEFECT):"


async def trial(url: str, args: argparse.Namespace, ssl_context: object) -> tuple[float, float, float]:
    """(wall, user CPU, system CPU) seconds of `args.calls` calls after a warm-up call."""
    settings = ProviderSettings(
        name="openai",
        base_url=url,
        api_key_env=None,
        max_concurrency=args.concurrency,
        prices={"m": Price(input=0, output=0)},
    )
    shared = SharedClient(args.concurrency, PooledTransport(args.concurrency, ssl_context))  # type: ignore[arg-type]
    provider = OpenAICompatProvider(settings, api_key=None, client=shared)
    gateway = CallGateway(provider, RunControl(), seed=1, limiter=Limiter(None, args.concurrency))

    async def one(i: int) -> None:
        await gateway.call(
            ChatRequest(key=f"k{i}", model="m", messages=[Message("user", PROMPT)], temperature=0.3, max_tokens=100)
        )

    await one(-1)  # warm-up: a connection, imports
    clock = Clock()
    async with anyio.create_task_group() as tg:
        for i in range(args.calls):
            tg.start_soon(one, i)
    figures = clock.split()
    await provider.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="the stub behind TLS (needs trustme)")
    args = parser.parse_args()
    ssl_context, pem = None, None
    if args.tls:
        import trustme

        authority = trustme.CA()
        certs = Path(tempfile_dir()) / "stub.pem"
        authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certs))
        pem = str(certs)
        ssl_context = authority_context(authority)
    walls, users, systems, stubs = [], [], [], []
    with stub_server_process(0, pem) as stub:
        for _ in range(args.trials):
            before = stub.cpu()
            wall, user, system = anyio.run(trial, stub.url, args, ssl_context)
            after = stub.cpu()
            walls.append(wall / args.calls)
            users.append(user / args.calls)
            systems.append(system / args.calls)
            if before is not None and after is not None:
                stubs.append((after - before) / args.calls)
            time.sleep(0.2)
    print(
        f"{args.calls} calls x {args.trials} trials, concurrency {args.concurrency}, "
        f"{'TLS' if args.tls else 'plain HTTP'}; per call, median (range), microseconds:"
    )
    print(f"  client CPU user   {median_range(users, 1e6)}")
    print(f"  client CPU system {median_range(systems, 1e6)}")
    print(f"  client CPU total  {median_range([u + s for u, s in zip(users, systems, strict=True)], 1e6)}")
    if stubs:
        print(f"  stub server CPU   {median_range(stubs, 1e6)}")
    print(f"  wall              {median_range(walls, 1e6)}")


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="bench-tls-")


def authority_context(authority: object) -> object:
    import ssl

    context = ssl.create_default_context()
    authority.configure_trust(context)  # type: ignore[attr-defined]
    return context


if __name__ == "__main__":
    main()
