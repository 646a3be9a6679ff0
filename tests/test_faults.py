"""Fault injection: the real app (the CLI, headless) over HTTP against the local stub,
with the faults that once cost money or leaked the key: billed replies without content,
costs that are not numbers, a trickling server, `Retry-After: 0` or in the past, the key
echoed back in every form. After every run: the recorded cost is what the stub billed,
the budget held, every file is valid JSON with nothing non-finite in it, and the key is
nowhere (stdout, stderr, every file of the results directory)."""

import json
import math
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from acausal_tui.cli import main
from engine import limits
from engine.models import CallRecord, ExperimentResult, Manifest
from engine.store import read_json
from tests.support import stub_server as stub
from tests.support.experiment_files import final_result
from tests.support.stub_run import calls_of, run_against

KEY = "sk-or-v1-fault+key/0123456789=ABCDEFabcdef"
PIECE = 8  # any piece of the key this long must stay out of every output


@pytest.fixture(autouse=True)
def api_key(monkeypatch, fast_backoff):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)


class Run:
    def __init__(self, code: int, directory: Path | None, out: str, err: str, seconds: float) -> None:
        self.code = code
        self.directory = directory
        self.out = out
        self.err = err
        self.seconds = seconds

    @property
    def result(self) -> ExperimentResult:
        assert self.directory is not None
        return final_result(self.directory)

    @property
    def calls(self) -> list[CallRecord]:
        assert self.directory is not None
        return calls_of(self.directory)


def run(
    tmp_path: Path,
    server: stub.StubServer,
    capsys,
    *flags: str,
    agents: int = 3,
    rounds: int = 2,
    timeout_s: float = 5.0,
) -> Run:
    began = time.monotonic()
    code, directory = run_against(
        tmp_path,
        server,
        *flags,
        agents=agents,
        rounds=rounds,
        seed=5,
        timeout_s=timeout_s,
        extra="max_cost_usd = 100\n",
    )
    seconds = time.monotonic() - began
    out, err = capsys.readouterr()
    outcome = Run(code, directory, out, err, seconds)
    assert_clean(tmp_path, outcome)
    return outcome


def key_forms() -> list[bytes]:
    """Every 8-character piece of the key, raw and encoded."""
    pieces = [KEY[i : i + PIECE] for i in range(len(KEY) - PIECE + 1)]
    forms = {f(p) for p in pieces for f in (str, lambda t: quote(t, safe=""), quote_plus)}
    forms.add("".join(f"%{b:02X}" for b in KEY.encode()[:PIECE]))
    return [form.encode() for form in forms]


def reject(token: str) -> None:
    raise AssertionError(f"non-finite number written: {token}")


def assert_clean(tmp_path: Path, outcome: Run) -> None:
    """No key on stdout, stderr or in any file; every file valid JSON (lines for the logs),
    with no NaN or Infinity; costs finite numbers."""
    forms = key_forms()
    for text in (outcome.out, outcome.err):
        assert not [f for f in forms if f in text.encode()], "the key reached the terminal"
    for path in tmp_path.rglob("*"):
        if not path.is_file() or path.name == "config.toml" or path.name == "run.lock":
            continue
        data = path.read_bytes()
        assert not [f for f in forms if f in data], f"the key is in {path}"
        if path.suffix == ".json":
            json.loads(data, parse_constant=reject)
        elif path.suffix in (".jsonl", ".log"):
            for line in data.splitlines():
                json.loads(line, parse_constant=reject)
    if outcome.directory is not None and (outcome.directory / "experiment_results.json").exists():
        result = outcome.result
        assert isinstance(result.total_cost, float) and math.isfinite(result.total_cost)
        assert result.total_cost >= 0
        assert all(math.isfinite(c.cost) and c.cost >= 0 for c in outcome.calls)
        assert sum(c.cost for c in outcome.calls) == pytest.approx(result.total_cost, abs=1e-12)


def to_the_cent(recorded: float, billed: float) -> None:
    assert round(recorded, 2) == round(billed, 2)
    assert recorded == pytest.approx(billed, rel=1e-9, abs=1e-12)


# -- money -----------------------------------------------------------------------------------


def test_billed_empty_replies_are_all_counted(tmp_path, server, capsys):
    """Every third request is billed but empty, in each of the shapes servers use."""
    shapes = stub.BILLED_EMPTY_SHAPES
    served: list[int] = []

    def rule(seen: stub.Seen) -> stub.Reply | None:
        if seen.index % 3 != 1:
            return None
        served.append(seen.index)
        return stub.billed_empty(shapes[len(served) % len(shapes)])

    server.rule = rule
    outcome = run(tmp_path, server, capsys)
    result = outcome.result
    assert result.status == "completed"  # exit 4 when the failed calls' fallbacks pass 5%
    assert outcome.code == (0 if result.validity.valid else 4)
    to_the_cent(result.total_cost, server.billed)
    assert result.empty_replies == len(served) > 0
    assert result.total_api_calls == server.count
    assert sum(c.empty_replies for c in outcome.calls) == len(served)


def test_a_model_that_answers_empty_to_everything_is_asked_twice_per_call(tmp_path, server, capsys):
    server.rule = stub.from_request(0, stub.billed_empty("thinking"))
    outcome = run(tmp_path, server, capsys)
    result = outcome.result
    assert outcome.code == 1 and result.status == "failed"
    assert server.count == 2 * 3  # 3 strategy calls, one retry each, not three
    assert result.empty_replies == server.count and result.total_api_calls == server.count
    to_the_cent(result.total_cost, server.billed)
    assert "every strategy call of round 1 failed" in outcome.err


def test_the_budget_holds_with_billed_empty_replies(tmp_path, server, capsys):
    """Once: $0.030664 billed under --max-cost 0.03, $0.019196 recorded."""
    server.rule = lambda seen: stub.billed_empty("thinking") if seen.index % 2 else None
    outcome = run(tmp_path, server, capsys, "--max-cost", "0.01", rounds=6)
    result = outcome.result
    assert outcome.code == 3 and result.status == "budget_exceeded"
    to_the_cent(result.total_cost, server.billed)
    assert server.billed <= 0.01


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.216], ids=["nan", "inf", "-inf", "negative"])
def test_costs_that_are_not_money_are_estimated_and_the_budget_holds(tmp_path, server, capsys, value):
    """One NaN once turned the budget off and wrote `"total_cost": null`."""
    server.rule = lambda seen: stub.odd_cost(value) if seen.index % 4 == 2 else None
    outcome = run(tmp_path, server, capsys, "--max-cost", "0.0085", rounds=6)
    result = outcome.result
    assert outcome.code == 3 and result.status == "budget_exceeded"
    assert result.cost_is_estimate and server.billed <= result.total_cost <= 0.0085
    odd = [c for c in outcome.calls if c.cost_is_estimate]
    assert odd and all(c.cost > 0 for c in odd)  # estimated from the price table, not 0


def test_a_resumed_run_after_odd_costs_is_readable_and_resumable(tmp_path, server, capsys):
    server.rule = lambda seen: stub.odd_cost(math.nan) if seen.index % 4 == 2 else None
    outcome = run(tmp_path, server, capsys, "--max-cost", "0.0085", rounds=6)
    assert outcome.code == 3
    server.rule = None
    code = main(["resume", str(outcome.directory), "--headless", "--max-cost", "100"])
    out, err = capsys.readouterr()
    assert code == 0 and read_json(outcome.directory / "manifest.json", Manifest).status == "completed"
    assert_clean(tmp_path, Run(code, outcome.directory, out, err, 0.0))


# -- network ---------------------------------------------------------------------------------


def test_a_trickling_reply_is_cut_off_and_retried(tmp_path, server, capsys):
    """One byte every 50 ms (about 30 s for the reply) against timeout_s = 1."""
    server.rule = lambda seen: stub.trickle(0.05) if seen.index == 0 else None
    outcome = run(tmp_path, server, capsys, timeout_s=1.0)
    result = outcome.result
    assert outcome.code == 0 and result.total_retries == 1
    assert outcome.seconds < 20  # a hang guard: the per-read timeout would have taken 30 s
    assert result.total_api_calls == server.count


@pytest.mark.parametrize("reply", [stub.rate_limited("0"), stub.rate_limited_past()], ids=["zero", "past-date"])
def test_retry_after_zero_or_past_still_backs_off(tmp_path, server, capsys, reply, monkeypatch):
    """Once: 133 zero-delay retries in 1.5 s."""
    monkeypatch.setattr(limits, "BACKOFF_BASE_S", 0.2)
    first = stub.first_attempt(reply)
    # strategy prompts only: each carries its agent's own power, so a repeated body is a retry
    server.rule = lambda seen: None if stub.DECISION_MARKER in json.dumps(seen.body) else first(seen)
    outcome = run(tmp_path, server, capsys)
    assert outcome.code == 0 and outcome.result.total_retries == 3 * 2  # 3 agents x 2 rounds
    arrivals: dict[str, list[float]] = {}
    for seen in server.requests:
        if stub.DECISION_MARKER not in json.dumps(seen.body):
            arrivals.setdefault(json.dumps(seen.body, sort_keys=True), []).append(seen.time)
    retried = [times for times in arrivals.values() if len(times) > 1]
    assert len(retried) == 3 * 2
    floor = limits.BACKOFF_BASE_S / 2  # the first backoff is at least half the base
    assert all(times[1] - times[0] >= floor for times in retried)


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", stub.KEY_ECHO_FORMS)
def test_an_echoed_key_is_nowhere_in_any_form(tmp_path, server, capsys, form):
    """Retryable errors echo the key, then a 401 does: the run fails, saying why, and the
    key is in no output and no file (checked by `run`)."""
    server.queue(*[stub.key_echo(KEY, form, 500)] * 3)
    server.rule = stub.from_request(9, stub.key_echo(KEY, form, 401))
    outcome = run(tmp_path, server, capsys)
    assert outcome.code == 1 and outcome.result.status == "failed"
    assert "upstream rejected credentials" in outcome.err and "***" in outcome.err
    assert "***" in (outcome.directory / "experiment_errors.log").read_text()


def test_allow_insecure_is_recorded_in_the_manifest(tmp_path, server, capsys):
    outcome = run(tmp_path, server, capsys, "--allow-insecure", agents=2, rounds=1)
    assert outcome.code == 0
    manifest = read_json(outcome.directory / "manifest.json", Manifest)
    assert manifest.config.provider.allow_insecure is True
