"""Whole small experiments through the real CLI against the local OpenRouter-shaped stub
server: the happy path, transient faults that retries absorb, a 429 storm, timeouts,
fatal errors mid-run, the budget, a missing key, and the key never reaching a file or
the terminal."""

import json
from pathlib import Path

import pytest

from engine.config import Price
from engine.models import StrategyRecord
from engine.store import read_json
from tests.support import stub_server as stub
from tests.support.experiment_files import final_result
from tests.support.stub_run import calls_of, run_against

KEY = "sk-or-v1-stub-experiments-0123456789abcdef"


@pytest.fixture(autouse=True)
def api_key(monkeypatch, fast_backoff):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)


def distinct_bodies(server: stub.StubServer) -> int:
    return len({json.dumps(s.body, sort_keys=True) for s in server.requests})


def assert_key_nowhere(directory: Path, *texts: str) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    for text in texts:
        assert KEY not in text


def test_happy_path(tmp_path, server, capsys):
    code, directory = run_against(tmp_path, server)
    out, err = capsys.readouterr()
    assert code == 0 and directory is not None
    assert out.strip() == str(directory)
    result = final_result(directory)
    assert result.status == "completed" and result.total_rounds == 2
    assert result.total_games == 6 and result.error_count == 0
    assert result.total_api_calls == server.count == 2 * (3 + 6)
    assert result.total_retries == 0
    assert result.total_cost > 0 and result.cost_is_estimate is False
    calls = calls_of(directory)
    assert len(calls) == server.count and all(c.reply and c.attempts == 1 for c in calls)
    assert sum(c.cost for c in calls) == pytest.approx(result.total_cost)
    assert all(s.headers["authorization"] == f"Bearer {KEY}" for s in server.requests)
    assert all(s.headers["x-title"] == "acausal-tui" and s.body["usage"] == {"include": True} for s in server.requests)
    assert_key_nowhere(directory, out, err)


@pytest.mark.parametrize(
    "fault",
    [
        stub.error(503, "Service Unavailable"),
        stub.error(500, "Internal Server Error"),
        stub.error(502, "Provider returned error", in_body_200=True),
        stub.in_flight_402("0.01"),
        stub.rate_limited("0.01"),
        stub.DROP,
        stub.TRUNCATED,
        stub.INVALID_JSON,
        stub.EMPTY_CHOICES,
        stub.completion(None),
        stub.completion("", finish_reason="error", error={"code": 502, "message": "upstream died"}),
    ],
    ids=[
        "503",
        "500",
        "error-in-200",
        "402-in-flight",
        "429",
        "dropped",
        "truncated",
        "invalid-json",
        "empty-choices",
        "no-content",
        "finish-error",
    ],
)
def test_a_transient_fault_then_success_on_every_call(tmp_path, server, fault, request):
    server.rule = stub.first_attempt(fault)
    code, directory = run_against(tmp_path, server)
    assert code == 0 and directory is not None
    result = final_result(directory)
    calls = calls_of(directory)
    distinct = distinct_bodies(server)  # identical prompts (same view, same label) fail once
    # an empty reply is billed: each one is counted and logged (engine.calls)
    empty = distinct if request.node.callspec.id in ("empty-choices", "no-content") else 0
    assert result.status == "completed" and result.error_count == result.empty_replies == empty
    assert len(calls) == 2 * (3 + 6) and all(c.reply for c in calls)
    assert result.total_retries == distinct == sum(c.attempts - 1 for c in calls)
    assert result.total_api_calls == server.count == len(calls) + distinct


def test_429_storm_pauses_the_limiter_and_every_call_succeeds(tmp_path, server):
    # Every request in the first 0.5 s gets a 429 asking for 0.2 s: the whole limiter
    # waits each time, the calls go back together, and nothing falls back.
    server.rule = stub.window(0.5, stub.rate_limited("0.2"))
    code, directory = run_against(tmp_path, server)
    assert code == 0 and directory is not None
    result = final_result(directory)
    got_429 = [s for s in server.requests if s.time - server.requests[0].time < 0.5]
    assert result.status == "completed" and result.error_count == 0
    assert result.total_retries == len(got_429) >= 6  # at least two waves of the 3 strategy calls
    assert result.total_api_calls == server.count
    strategies = read_json(directory / "rounds" / "strategies_r1.json", list[StrategyRecord])
    assert all(s.flags == [] for s in strategies)
    # The pause is shared: after the first wave, no request came back before 0.2 s passed.
    start = server.requests[0].time
    first_wave = [s for s in server.requests if s.time - start < 0.1]
    later = [s for s in server.requests if s.time - start >= 0.1]
    assert len(first_wave) == 3 and min(s.time for s in later) - start >= 0.19


def test_timeouts_are_retried(tmp_path, server):
    server.rule = stub.first_attempt(stub.slow(2.0))
    code, directory = run_against(tmp_path, server, rounds=1, timeout_s=0.3)
    assert code == 0 and directory is not None
    result = final_result(directory)
    calls = calls_of(directory)
    assert result.status == "completed" and result.error_count == 0
    assert result.total_retries == distinct_bodies(server) == sum(c.attempts - 1 for c in calls)
    assert len(calls) == 9 and all(c.reply for c in calls)


def test_calls_that_keep_failing_fall_back_and_the_run_goes_on(tmp_path, server):
    # every decision against the viewer's "Opponent A" fails: half of the moves
    server.rule = lambda seen: stub.error(503, "down") if "Opponent A\\n" in str(seen.body) else None
    code, directory = run_against(tmp_path, server, rounds=1)
    # completed, but half the moves are coin flips: INVALID, exit 4 (SPEC §3, §6)
    assert code == 4 and directory is not None
    result = final_result(directory)
    assert result.status == "completed"
    assert result.total_retries == 3 * 3 and result.round_summaries[0].fallback_decisions == 3
    assert result.validity is not None and result.validity.reasons == ["fallback moves 50% > 5%"]


def test_a_round_whose_decision_calls_all_fail_stops_the_run_against(tmp_path, server, capsys):
    server.rule = lambda seen: stub.error(503, "down") if "Decision" in str(seen.body) else None
    code, directory = run_against(tmp_path, server, rounds=2)
    err = capsys.readouterr().err
    assert code == 1
    result = final_result(directory)
    assert result.status == "failed" and result.total_rounds == 0
    assert "every decision call of round 1 failed" in result.message and "HTTP 503" in result.message
    assert "every decision call of round 1 failed" in err


def test_a_round_whose_strategy_calls_all_fail_stops_the_run_against(tmp_path, server):
    server.rule = lambda seen: stub.error(404, "No endpoints found") if "Decision" not in str(seen.body) else None
    code, directory = run_against(tmp_path, server, rounds=2)
    assert code == 1
    result = final_result(directory)
    assert result.status == "failed" and "every strategy call of round 1 failed" in result.message


@pytest.mark.parametrize(
    ("fault", "hint"),
    [
        (stub.error(401, f"Invalid credentials: {KEY}"), "OPENROUTER_API_KEY"),
        (stub.credits_402(), "add credits at https://openrouter.ai/settings/credits"),
        (stub.error(403, "Key limit exceeded"), "HTTP 403"),
    ],
    ids=["401", "402-credits", "403"],
)
def test_fatal_error_mid_run_fails_with_partial_results(tmp_path, server, capsys, fault, hint):
    server.rule = stub.from_request(9 + 3, fault)  # round 1 (9 calls) and round 2's strategies pass
    code, directory = run_against(tmp_path, server, rounds=3)
    out, err = capsys.readouterr()
    assert code == 1 and directory is not None
    result = final_result(directory)
    assert result.status == "failed" and result.total_rounds == 1
    assert result.message is not None and hint in result.message
    assert hint in err
    assert (directory / "rounds" / "games_r1.json").exists()
    assert not (directory / "rounds" / "games_r2.json").exists()
    assert_key_nowhere(directory, out, err)


MAIN_PRICE = '[provider.prices."stub/main"]\ninput = 0.0\noutput = 1.0\n'
SUB_PRICE = '[provider.prices."stub/sub"]\ninput = 0.0\noutput = 0.0\n'


def test_budget_stops_the_run_before_it_is_exceeded(tmp_path, capsys):
    # A strategy call may cost up to 1000 tokens x $1/M = $0.001; three in flight reserve
    # $0.003. Round 1 fits $0.00305; round 2 (after ~$0.0001 spent) does not.
    prices = {"stub/main": Price(input=0.0, output=1.0), "stub/sub": Price(input=0.0, output=0.0)}
    with stub.StubServer(prices=prices) as server:
        code, directory = run_against(
            tmp_path,
            server,
            "--max-cost",
            "0.00305",
            "--main-model",
            "stub/main",
            "--sub-model",
            "stub/sub",
            rounds=3,
            extra=MAIN_PRICE + SUB_PRICE,
        )
    assert code == 3 and directory is not None
    result = final_result(directory)
    assert result.status == "budget_exceeded" and result.total_rounds == 1
    assert 0 < result.total_cost <= 0.00305
    assert "budget" in capsys.readouterr().err


def test_unknown_model_price_is_reported_in_the_error_log(tmp_path, server):
    code, directory = run_against(
        tmp_path, server, "--provider", "openai", "--sub-model", "local/unpriced", agents=2, rounds=1
    )
    assert code == 0
    errors = (directory / "experiment_errors.log").read_text().splitlines()
    unknown = [json.loads(line) for line in errors if '"unknown_price"' in line]
    assert len(unknown) == 1 and "local/unpriced" in unknown[0]["message"]
    assert final_result(directory).cost_is_estimate is True
