"""Shared pieces of the bench scripts: the stub server in its own process, experiment
configs aimed at it, and one engine run timed."""

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "BENCH_KEY"
ENV = {KEY_ENV: "sk-bench-not-a-real-key"}


class StubProcess:
    """The stub server's process: its base URL and the CPU seconds it has used so far."""

    def __init__(self, process: "subprocess.Popen[str]", url: str) -> None:
        self.process, self.url = process, url

    def cpu(self) -> float | None:
        """User + system CPU seconds of the stub process (None where /proc is missing)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def set_cpus(pid: int, cpus: set[int]) -> None:
    """Every thread of process `pid` on `cpus` (threads it starts later inherit them)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


# The CPUs this process may use (a container or a job scheduler may allow fewer than the
# machine has), read before any pinning narrows them.
USABLE_CPUS = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


def place(stubs: list[StubProcess], apart: bool) -> str:
    """Where the client (this process) and the stub servers run, and a line saying so.
    `apart`: the stubs on the last CPU and the client on the others, as a remote server
    would be (sharing the cores, Linux wakes a stub on its client's core after each
    loopback send and the two queue for it; docs/performance.md); else all on every CPU."""
    if not USABLE_CPUS or not os.path.isdir("/proc/self/task"):
        return "CPUs: shared (this system cannot pin processes)"
    every = set(USABLE_CPUS)
    if not apart or len(every) < 2:
        for pid in [os.getpid(), *(stub.process.pid for stub in stubs)]:
            set_cpus(pid, every)
        return f"CPUs: client and stub share all {len(every)}"
    last = max(every)
    set_cpus(os.getpid(), every - {last})
    for stub in stubs:
        set_cpus(stub.process.pid, {last})
    return f"CPUs: stub on CPU {last}, client on CPUs {sorted(every - {last})}"


@contextmanager
def stub_server_process(latency_ms: float, tls_pem: str | None = None) -> Iterator[StubProcess]:
    """tests/support/stub_server.py in its own process (as a real server would be), so its
    CPU time is not taken from the client's and can be measured apart; with `tls_pem` (key
    and certificate chain) behind TLS (tests/support/tls_stub.py)."""
    command = (
        ["tests.support.tls_stub", str(latency_ms), tls_pem]
        if tls_pem
        else ["tests.support.stub_server", str(latency_ms)]
    )
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield StubProcess(process, process.stdout.readline().strip())
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def stub_process(latency_ms: float) -> Iterator[str]:
    """The stub server in its own process; yields its base URL."""
    with stub_server_process(latency_ms) as stub:
        yield stub.url


def stub_overrides(server: str, results: str, agents: int, rounds: int, **provider: Any) -> dict[str, Any]:
    """Config overrides for an OpenRouter-shaped run against the stub at `server`."""
    return {
        "agents": agents,
        "rounds": rounds,
        "seed": 1,
        "results_dir": results,
        "provider": {
            "name": "openrouter",
            "base_url": server,
            "api_key_env": KEY_ENV,
            "max_cost_usd": None,
            **provider,
        },
    }


class Clock:
    """Wall seconds, and this process's user and system CPU seconds, since it was made."""

    def __init__(self) -> None:
        self.wall, self.usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

    def read(self) -> tuple[float, float]:
        """(wall, CPU) seconds."""
        wall, user, system = self.split()
        return wall, user + system

    def split(self) -> tuple[float, float, float]:
        """(wall, user CPU, system CPU) seconds."""
        now = resource.getrusage(resource.RUSAGE_SELF)
        return (time.perf_counter() - self.wall, now.ru_utime - self.usage.ru_utime, now.ru_stime - self.usage.ru_stime)


def median_range(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    """`median (min-max)` of `values` times `scale`."""
    ordered = sorted(v * scale for v in values)
    middle = ordered[len(ordered) // 2] if len(ordered) % 2 else sum(ordered[len(ordered) // 2 - 1 :][:2]) / 2
    return f"{middle:.{digits}f} ({ordered[0]:.{digits}f}-{ordered[-1]:.{digits}f})"


async def engine_run(cfg: Any) -> tuple[float, int]:
    """Wall seconds and API calls of one whole experiment through the real provider."""
    from engine.providers.factory import make_provider
    from engine.runner import run_experiment

    provider = make_provider(cfg, ENV)
    began = time.perf_counter()
    try:
        result = await run_experiment(cfg, provider=provider)
    finally:
        await provider.aclose()
    assert result.status == "completed", result.message
    return time.perf_counter() - began, result.total_api_calls
