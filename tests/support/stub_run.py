"""Whole experiments through the headless CLI against the local stub server: the config
that points a run at it, the run itself, and its call log."""

from pathlib import Path

import msgspec

from acausal_tui.cli import main
from engine.models import CallRecord
from tests.support.stub_server import StubServer


def stub_config(tmp_path: Path, server: StubServer, timeout_s: float = 5.0, extra: str = "") -> Path:
    """tmp_path/config.toml: the openrouter provider at the stub's URL (its key comes from
    OPENROUTER_API_KEY), then the TOML in `extra`."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[provider]\nname = "openrouter"\nbase_url = "{server.base_url}"\ntimeout_s = {timeout_s}\n{extra}'
    )
    return path


def run_against(
    tmp_path: Path,
    server: StubServer,
    *flags: str,
    agents: int = 3,
    rounds: int = 2,
    seed: int = 11,
    timeout_s: float = 5.0,
    extra: str = "",
) -> tuple[int, Path | None]:
    """`acausal-tui run --headless` against the stub, results under tmp_path/results: its
    exit code and the experiment directory (None when it made none)."""
    results = tmp_path / "results"
    code = main(
        [
            "run",
            "--headless",
            "--config",
            str(stub_config(tmp_path, server, timeout_s, extra)),
            "--results-dir",
            str(results),
            "--agents",
            str(agents),
            "--rounds",
            str(rounds),
            "--seed",
            str(seed),
            *flags,
        ]
    )
    directories = sorted(results.glob("exp_*")) if results.exists() else []
    return code, directories[-1] if directories else None


def calls_of(directory: Path) -> list[CallRecord]:
    """The experiment's call log, one record a line."""
    decoder = msgspec.json.Decoder(CallRecord)
    return [decoder.decode(line) for line in (directory / "calls.jsonl").read_bytes().splitlines()]
