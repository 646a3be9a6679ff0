"""Resume: state rebuilt from disk, recorded calls replayed, refusals, the budget."""

import errno
import functools
import json
import tempfile
from pathlib import Path

import anyio
import msgspec
import pytest

from acausal_tui.cli import main
from engine.calls import CANCELLED
from engine.control import RunControl
from engine.events import ErrorLogged
from engine.models import CallRecord, ErrorRecord, Manifest
from engine.providers.base import ChatRequest, Completion
from engine.providers.factory import api_key_for, make_provider
from engine.providers.simulated import SimulatedProvider
from engine.resume import (
    MISSING_CALLS_NOTE,
    ResumeError,
    open_resume,
    resume_experiment,
    set_aside_torn_tail,
)
from engine.runner import run_experiment
from engine.store import ExperimentStore, read_json, read_jsonl
from tests.support.experiment_files import (
    assert_files_valid,
    cancelled_in_flight,
    final_result,
    only_experiment,
    outcome,
    records,
)


class Counting:
    """The simulated provider, recording every request; optionally aborts the run when
    request number `abort_at` (1-based) arrives, with calls still in flight."""

    name = "simulated"
    simulated = True

    def __init__(
        self,
        seed: int,
        *,
        control: RunControl | None = None,
        abort_at: int = 0,
        cost: float = 0.0,
        latency_ms: float = 2.0,
    ) -> None:
        self.inner = SimulatedProvider(seed, latency_ms=latency_ms)
        self.control = control
        self.abort_at = abort_at
        self.cost = cost
        self.keys: list[str] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.keys.append(request.key)
        if self.control is not None and len(self.keys) == self.abort_at:
            self.control.abort("test abort")
        completion = await self.inner.complete(request)
        return msgspec.structs.replace(completion, cost=self.cost)

    def worst_case_cost(self, request: ChatRequest) -> float:
        return self.cost

    async def aclose(self) -> None:
        pass


async def reference(make_config, tmp_path: Path, **overrides):
    config = make_config(results_dir=str(tmp_path / "reference"), **overrides)
    provider = Counting(config.seed)
    result = await run_experiment(config, provider=provider)
    return only_experiment(tmp_path / "reference"), result, provider


async def interrupted(make_config, tmp_path: Path, abort_at: int, **overrides):
    config = make_config(results_dir=str(tmp_path / "interrupted"), **overrides)
    control = RunControl()
    provider = Counting(config.seed, control=control, abort_at=abort_at)
    result = await run_experiment(config, provider=provider, control=control)
    assert result.status == "aborted"
    return only_experiment(tmp_path / "interrupted"), provider


def saved(make_config, tmp_path: Path, status: str = "aborted", **overrides) -> Path:
    """A finished experiment directory (made in a sync test), its status set to `status`."""
    directory, _, _ = anyio.run(functools.partial(reference, make_config, tmp_path, **overrides))
    if status != "completed":
        edit_json(directory / "manifest.json", lambda m: m.update(status=status))
    return directory


async def resume(directory: Path, **options):
    resumable = open_resume(directory, options.pop("max_cost_usd", None))
    provider = Counting(resumable.config.seed, **options)
    return await resume_experiment(resumable, provider), provider


# 6 agents: 6 strategy calls, then 15 games = 30 decisions (+ follow-ups) per round.
@pytest.mark.parametrize("abort_at", [1, 4, 7, 20, 37, 80, 130])
async def test_resumed_run_equals_an_uninterrupted_one(make_config, tmp_path, abort_at):
    ref_dir, ref_result, ref_provider = await reference(make_config, tmp_path, agents=6, rounds=4)
    directory, first = await interrupted(make_config, tmp_path, abort_at, agents=6, rounds=4)
    assert_files_valid(directory)
    recorded, _ = read_jsonl(directory / "calls.jsonl", CallRecord)

    result, second = await resume(directory)

    assert result.status == "completed"
    assert records(directory) == records(ref_dir)
    assert outcome(result, cancelled_in_flight(directory)) == outcome(ref_result)
    assert outcome(final_result(directory), cancelled_in_flight(directory)) == outcome(ref_result)
    assert read_json(directory / "manifest.json", Manifest).status == "completed"
    # Exactly once: nothing answered is asked again, and only the calls cancelled in
    # flight by the abort (logged as such: they were sent) were ever sent twice.
    answered = {c.key for c in recorded if c.reply is not None}
    assert not answered & set(second.keys)
    in_flight = len(first.keys) - len(answered)
    assert [c.error for c in recorded if c.reply is None] == [CANCELLED] * in_flight
    assert len(first.keys) + len(second.keys) == len(ref_provider.keys) + in_flight
    calls, bad = read_jsonl(directory / "calls.jsonl", CallRecord)
    assert not bad and sorted(c.key for c in calls if c.reply is not None) == sorted(ref_provider.keys)
    assert cancelled_in_flight(directory) == in_flight
    assert not (directory / "run.lock").exists()


async def test_resume_twice_in_a_row(make_config, tmp_path):
    ref_dir, ref_result, _ = await reference(make_config, tmp_path, agents=5, rounds=4)
    directory, _ = await interrupted(make_config, tmp_path, 30, agents=5, rounds=4)
    resumable = open_resume(directory)
    control = RunControl()
    provider = Counting(resumable.config.seed, control=control, abort_at=25)
    assert (await resume_experiment(resumable, provider, control=control)).status == "aborted"
    result, _ = await resume(directory)
    assert records(directory) == records(ref_dir)
    assert outcome(result, cancelled_in_flight(directory)) == outcome(ref_result)


class AmbiguousInRound2(Counting):
    """Game r2_g1's first player answers at once but never clearly: a logged fallback
    while the round's other moves are still in flight."""

    async def complete(self, request: ChatRequest) -> Completion:
        if request.key.startswith("decision/r2/g1/p1/"):
            self.keys.append(request.key)
            return Completion(text="COOPERATE or DEFECT, who knows")
        return await super().complete(request)


class AbortOnError:
    def __init__(self, control: RunControl) -> None:
        self.control = control

    def on_event(self, event) -> None:
        if isinstance(event, ErrorLogged):
            self.control.abort("test abort")


async def test_errors_of_the_replayed_round_are_counted_once(make_config, tmp_path):
    config = make_config(agents=4, rounds=3, results_dir=str(tmp_path / "reference"))
    reference_result = await run_experiment(config, provider=AmbiguousInRound2(config.seed))
    assert reference_result.error_count >= 1
    config = make_config(agents=4, rounds=3, results_dir=str(tmp_path / "interrupted"))
    control = RunControl()
    provider = AmbiguousInRound2(config.seed, latency_ms=20)
    result = await run_experiment(config, provider=provider, control=control, observer=AbortOnError(control))
    assert result.status == "aborted" and result.total_rounds == 1
    directory = only_experiment(tmp_path / "interrupted")
    errors, _ = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    assert [e.context["game"] for e in errors] == ["r2_g1"]  # logged before the abort

    resumable = open_resume(directory)
    result = await resume_experiment(resumable, AmbiguousInRound2(config.seed))
    assert result.error_count == reference_result.error_count
    assert result.total_api_calls == reference_result.total_api_calls + cancelled_in_flight(directory)


async def test_state_is_rebuilt_for_scripted_agents_and_shuffled_labels(make_config, tmp_path):
    options = dict(
        rounds=4,
        switches={"labels": "shuffled", "history": "last:2"},
        population=[
            {"kind": "llm", "count": 3},
            {"kind": "scripted", "strategy": "grudger", "count": 1},
            {"kind": "scripted", "strategy": "random", "count": 1},
        ],
    )
    ref_dir, ref_result, _ = await reference(make_config, tmp_path, **options)
    directory, _ = await interrupted(make_config, tmp_path, 40, **options)
    result, _ = await resume(directory)
    assert records(directory) == records(ref_dir)
    assert outcome(result, cancelled_in_flight(directory)) == outcome(ref_result)


async def test_resume_after_the_last_round_was_saved_just_finishes(make_config, tmp_path):
    ref_dir, ref_result, _ = await reference(make_config, tmp_path, agents=4, rounds=2)
    directory = ref_dir
    manifest = read_json(directory / "manifest.json", Manifest)
    raw = json.loads((directory / "manifest.json").read_text())
    raw["status"] = "running"
    (directory / "manifest.json").write_text(json.dumps(raw))
    (directory / "experiment_results.json").unlink()
    result, provider = await resume(directory)
    assert result.status == "completed" and provider.keys == []
    assert outcome(result, cancelled_in_flight(directory)) == outcome(ref_result)
    assert read_json(directory / "manifest.json", Manifest).start_time == manifest.start_time
    # the manifest said `running`: a stop that logged nothing of its calls in flight
    assert (result.unclean_stops, ref_result.unclean_stops) == (1, 0)


# -- the call log -------------------------------------------------------------------------


async def test_torn_last_call_line_is_set_aside_and_reported(make_config, tmp_path, capsys):
    ref_dir, ref_result, _ = await reference(make_config, tmp_path, agents=4, rounds=3)
    directory, _ = await interrupted(make_config, tmp_path, 25, agents=4, rounds=3)
    log = directory / "calls.jsonl"
    whole = log.read_bytes()
    with open(log, "ab") as file:
        file.write(b'{"key": "decision/r2/g1/p1/t0", "model": "x", "atte')

    resumable = open_resume(directory)
    assert resumable.notes == ["calls.jsonl: a torn last line (51 bytes) was moved to calls.jsonl.corrupt"]
    assert log.read_bytes() == whole
    assert (directory / "calls.jsonl.corrupt").read_bytes().startswith(b'{"key": "decision/r2/g1')
    result = await resume_experiment(resumable, Counting(resumable.config.seed))

    assert records(directory) == records(ref_dir)
    assert result.error_count == ref_result.error_count  # the repair is logged, not counted
    errors, bad = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    assert not bad and [e.message for e in errors if e.type == "resume_repair"] == resumable.notes


def test_set_aside_torn_tail_cases(tmp_path):
    path = tmp_path / "calls.jsonl"
    good = msgspec.json.encode(
        CallRecord(
            key="k",
            model="m",
            attempts=1,
            reply="C",
            usage={"prompt_tokens": 1, "completion_tokens": 1},
            cost=0.0,
            cost_is_estimate=False,
            latency_s=0.0,
        )
    )
    path.write_bytes(good + b"\n" + good + b"\n")
    assert set_aside_torn_tail(path, CallRecord) is None  # intact
    path.write_bytes(good + b"\n" + good)
    assert set_aside_torn_tail(path, CallRecord) is None  # whole but unterminated: kept
    assert path.read_bytes() == good + b"\n" + good + b"\n"
    path.write_bytes(good + b"\n" + b'{"key": 3}\n')  # whole line, not a call record
    assert set_aside_torn_tail(path, CallRecord)
    assert path.read_bytes() == good + b"\n"
    path.write_bytes(good[:10])  # the only line, torn
    assert set_aside_torn_tail(path, CallRecord)
    assert path.read_bytes() == b""
    corrupt = (tmp_path / "calls.jsonl.corrupt").read_bytes().splitlines()
    assert corrupt == [b'{"key": 3}', good[:10]]


# -- the budget --------------------------------------------------------------------------------


async def test_budget_counts_what_was_already_spent(make_config, tmp_path):
    # 4 agents: 4 strategy calls + 12 decisions (+ follow-ups) per round, at $0.01 each.
    config = make_config(agents=4, rounds=3, provider={"name": "simulated", "max_cost_usd": 0.25})
    first = Counting(config.seed, cost=0.01)
    stopped = await run_experiment(config, provider=first)
    assert stopped.status == "budget_exceeded" and stopped.total_rounds == 1
    directory = only_experiment(Path(config.results_dir))
    spent = stopped.total_cost

    again, provider = await resume(directory, cost=0.01)  # same budget: stops at once
    assert again.status == "budget_exceeded" and provider.keys == []
    assert again.total_cost == pytest.approx(spent)

    raised, provider = await resume(directory, cost=0.01, max_cost_usd=0.40)
    assert raised.status == "budget_exceeded" and raised.total_rounds == 2
    assert raised.total_cost == pytest.approx(spent + 0.01 * len(provider.keys))
    assert raised.total_cost <= 0.40 + 1e-9 and raised.config.provider.max_cost_usd == 0.40

    done, _ = await resume(directory, cost=0.01, max_cost_usd=100)
    assert done.status == "completed"
    calls, _ = read_jsonl(directory / "calls.jsonl", CallRecord)
    assert done.total_cost == pytest.approx(0.01 * len(calls))
    assert done.total_api_calls == len(calls)


class CheapButFeared(Counting):
    """Costs $0.01 a call but reserves a worst case of $0.05: in-flight reservations stop
    the budget early, so a resume without them could afford more than the original run."""

    def worst_case_cost(self, request: ChatRequest) -> float:
        return 0.05


async def test_budget_stopped_experiment_resumed_with_the_same_budget_stops_at_once(make_config, tmp_path):
    config = make_config(agents=4, rounds=3, provider={"name": "simulated", "max_cost_usd": 0.3})
    stopped = await run_experiment(config, provider=CheapButFeared(config.seed, cost=0.01))
    assert stopped.status == "budget_exceeded"
    directory = only_experiment(Path(config.results_dir))
    before = snapshot(directory / "rounds")

    resumable = open_resume(directory)
    provider = CheapButFeared(resumable.config.seed, cost=0.01)
    again = await resume_experiment(resumable, provider)

    assert again.status == "budget_exceeded" and provider.keys == []
    assert again.total_rounds == stopped.total_rounds and snapshot(directory / "rounds") == before
    assert again.total_cost == pytest.approx(stopped.total_cost)
    raised, provider = await resume(directory, cost=0.01, max_cost_usd=0.6)  # a larger one goes on
    assert provider.keys and raised.total_rounds > stopped.total_rounds


async def test_error_count_after_a_disk_full_resume_equals_an_uninterrupted_run(make_config, tmp_path, monkeypatch):
    _, ref_result, _ = await reference(make_config, tmp_path, agents=4, rounds=3)
    config = make_config(agents=4, rounds=3, results_dir=str(tmp_path / "full"))
    real_write = ExperimentStore.write_round

    def full_at_round_2(self, round, *args):
        if round == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, round, *args)

    monkeypatch.setattr(ExperimentStore, "write_round", full_at_round_2)
    failed = await run_experiment(config, provider=Counting(config.seed))
    assert failed.status == "failed" and "No space left" in (failed.message or "")
    monkeypatch.setattr(ExperimentStore, "write_round", real_write)
    directory = only_experiment(tmp_path / "full")

    result, _ = await resume(directory)

    assert result.status == "completed"
    assert result.error_count == ref_result.error_count
    errors, _ = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    assert [e.type for e in errors].count("storage") == 1  # still in the log, for the record


async def test_a_missing_call_log_is_reported_on_resume(make_config, tmp_path, capsys):
    directory, _ = await interrupted(make_config, tmp_path, 30, agents=4, rounds=3)
    (directory / "calls.jsonl").unlink()

    resumable = open_resume(directory)
    assert resumable.notes == [MISSING_CALLS_NOTE]
    result = await resume_experiment(resumable, Counting(resumable.config.seed))

    assert result.status == "completed"
    errors, _ = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    assert [e.message for e in errors if e.type == "resume_repair"] == [MISSING_CALLS_NOTE]
    assert "cost are unknown" in MISSING_CALLS_NOTE


def test_a_missing_call_log_is_said_on_stderr(make_config, tmp_path, capsys):
    directory = saved(make_config, tmp_path, agents=3, rounds=2)
    (directory / "calls.jsonl").unlink()
    assert main(["resume", str(directory), "--headless"]) == 0
    assert MISSING_CALLS_NOTE in capsys.readouterr().err


# -- refusals ------------------------------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, bytes]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def change(relative: str, edit):
    return lambda directory: edit_json(directory / relative, edit)


def delete(relative: str):
    return lambda directory: (directory / relative).unlink()


def both_defect(games):
    games[0].update(player1_action="DEFECT", player2_action="DEFECT")


REFUSALS = {  # name: (damage, what the message says)
    "completed": (lambda directory: None, "already completed"),
    "newer_schema": (change("manifest.json", lambda m: m.update(schema_version=99)), "written by a newer version"),
    "newer_schema_unreadable": (
        change("manifest.json", lambda m: m.update(schema_version=99, seed="x")),
        "written by a newer version",
    ),
    "missing_manifest": (delete("manifest.json"), "no manifest.json"),
    "unreadable_manifest": (lambda directory: (directory / "manifest.json").write_text("{"), "unreadable"),
    "game_changed": (change("rounds/games_r1.json", both_defect), "game r1_g1 does not follow"),
    "summary_changed": (
        change("rounds/summary_r2.json", lambda s: s["agent_powers"].reverse()),
        "summary_r2.json disagrees",
    ),
    "round_missing": (delete("rounds/summary_r1.json"), "are not rounds 1..1"),
    "strategies_missing": (delete("rounds/strategies_r2.json"), "round 2: unreadable"),
    "agents_changed": (change("manifest.json", lambda m: m["config"].update(agents=5)), "agents do not match"),
    "seed_changed": (change("manifest.json", lambda m: m["config"].update(seed=8)), "seed"),
    "prompts_changed": (
        change("manifest.json", lambda m: m["prompt_hashes"].update(decision="0")),
        "prompt templates changed",
    ),
    "condition_changed": (
        change("manifest.json", lambda m: m["condition"].update(identity=False)),
        "defined differently",
    ),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_resume_refuses_with_one_line_and_writes_nothing(make_config, tmp_path, capsys, name):
    directory = saved(make_config, tmp_path, "completed" if name == "completed" else "aborted", agents=4, rounds=2)
    damage, expected = REFUSALS[name]
    damage(directory)
    before = snapshot(directory)
    with pytest.raises(ResumeError, match=expected):
        open_resume(directory)
    code = main(["resume", str(directory), "--headless"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert snapshot(directory) == before


def test_resume_of_a_missing_directory(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "nope")]) == 2
    assert "no such experiment directory" in capsys.readouterr().err


def test_resume_needs_the_api_key_and_says_so(make_config, tmp_path, capsys, monkeypatch):
    directory = saved(make_config, tmp_path, "failed", agents=4, rounds=2)
    edit_json(
        directory / "manifest.json",
        lambda m: m["config"]["provider"].update(
            name="openrouter", api_key_env="OPENROUTER_API_KEY", base_url="https://openrouter.ai/api/v1"
        ),
    )
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with open(directory / "calls.jsonl", "ab") as file:  # a torn tail is not repaired either
        file.write(b'{"key": "torn')
    before = snapshot(directory)
    assert main(["resume", str(directory), "--headless"]) == 2
    assert "OPENROUTER_API_KEY" in capsys.readouterr().err
    assert snapshot(directory) == before


def test_bad_max_cost_override_is_a_usage_error(make_config, tmp_path, capsys):
    directory = saved(make_config, tmp_path, "budget_exceeded", agents=4, rounds=2)
    assert main(["resume", str(directory), "--headless", "--max-cost", "-1"]) == 2
    assert "max_cost_usd: must be greater than 0" in capsys.readouterr().err


def test_resume_in_an_unwritable_directory_exits_2(tmp_path, capsys, monkeypatch, make_config):
    directory = saved(make_config, tmp_path, agents=4, rounds=2)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    before = snapshot(directory)
    assert main(["resume", str(directory), "--headless"]) == 2
    err = capsys.readouterr().err
    assert "is not writable (Permission denied)" in err and err.count("\n") == 1
    assert snapshot(directory) == before


# -- unwritable storage at start -------------------------------------------------------------


def test_full_disk_at_start_exits_2_before_anything(tmp_path, capsys, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=4096))
    results = tmp_path / "results"
    assert main(["run", "--headless", "--agents", "3", "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"results_dir: {results}: the disk is full (4 KiB free)" in err and err.count("\n") == 1
    assert not results.exists()


def test_unwritable_results_dir_exits_2_even_for_root(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    results = tmp_path / "results"
    assert main(["run", "--headless", "--agents", "3", "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert f"results_dir: {results} is not writable (Read-only file system)" in err
    assert not results.exists()


# -- a real HTTP endpoint ---------------------------------------------------------------------


async def test_a_run_failed_on_a_bad_key_resumes_once_it_is_fixed(make_config, tmp_path):
    from tests.support import stub_server as stub

    with stub.StubServer() as server:
        options = dict(agents=4, rounds=3, provider={"name": "openai", "base_url": server.base_url})
        config = make_config(results_dir=str(tmp_path / "reference"), **options)
        reference_result = await run_experiment(config, provider=make_provider(config, {}))
        uninterrupted = server.count

        server.rule = stub.from_request(uninterrupted + 20, stub.error(401, "invalid key"))
        config = make_config(results_dir=str(tmp_path / "failed"), **options)
        failed = await run_experiment(config, provider=make_provider(config, {}))
        assert failed.status == "failed" and "401" in (failed.message or "")
        directory = only_experiment(tmp_path / "failed")
        recorded, _ = read_jsonl(directory / "calls.jsonl", CallRecord)
        answered = [c for c in recorded if c.reply is not None]
        assert 0 < len(answered) <= 20 and any(c.reply is None for c in recorded)

        server.rule = None
        before = server.count
        resumable = open_resume(directory)
        result = await resume_experiment(resumable, make_provider(resumable.config, {}))
        sent_on_resume = server.count - before

    assert result.status == "completed"
    assert sent_on_resume == uninterrupted - len(answered)
    assert records(directory) == records(only_experiment(tmp_path / "reference"))
    assert result.total_cost == pytest.approx(reference_result.total_cost) and result.total_cost > 0


def remote_http(manifest: dict) -> None:
    manifest["config"]["provider"].update(
        name="openrouter", base_url="http://192.0.2.7/api/v1", api_key_env="OPENROUTER_API_KEY"
    )


def test_resume_refuses_a_key_over_plain_http_unless_allowed(make_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-resume-test-0123456789")
    directory = saved(make_config, tmp_path, agents=3, rounds=2)
    edit_json(directory / "manifest.json", remote_http)
    before = snapshot(directory)
    assert main(["resume", str(directory), "--headless"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-insecure" in err and "192.0.2.7" in err
    assert snapshot(directory) == before

    resumable = open_resume(directory, allow_insecure=True)
    try:
        assert resumable.config.provider.allow_insecure is True
        assert resumable.manifest.config.provider.allow_insecure is True  # recorded when it runs
        api_key_for(resumable.config)  # no refusal now
    finally:
        resumable.store.close()


async def test_an_aborted_then_resumed_run_audits_clean(make_config, tmp_path):
    """The calls an abort cancelled in flight are logged, then asked again on resume and
    logged again: the audit reads the last record of each, finding no disagreement."""
    from engine.audit import audit_experiment

    directory, _ = await interrupted(make_config, tmp_path, 20, agents=6, rounds=4)
    assert cancelled_in_flight(directory) > 0
    result, _ = await resume(directory)
    assert result.status == "completed"
    audit = audit_experiment(directory)
    assert audit.disagreements == [] and audit.failed_calls == 0
    assert any("asked again after an interruption" in note for note in audit.notes)


async def test_a_cost_estimated_before_the_interruption_stays_an_estimate_after_it(make_config, tmp_path):
    """Resume restores whether the spend so far is an estimate: the live counters (the run
    screen's `~`) and the result read the same flag."""
    directory, _ = await interrupted(make_config, tmp_path, 37, agents=6, rounds=4)
    path = directory / "calls.jsonl"
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace('"cost_is_estimate":false', '"cost_is_estimate":true')
    assert '"cost_is_estimate":true' in lines[0]
    path.write_text("\n".join(lines) + "\n")
    resumable = open_resume(directory)
    control = RunControl()
    result = await resume_experiment(resumable, Counting(resumable.config.seed), control=control)
    assert result.status == "completed" and result.cost_is_estimate and control.stats.cost_is_estimate


def test_resume_hands_the_provider_the_bills_of_its_log(make_config, tmp_path):
    """Exact bills of calls with one attempt sent: what the markup is learnt from (an
    estimate, a failed call or one with retries says nothing about the markup)."""
    from engine.resume import continued

    directory = saved(make_config, tmp_path)

    def billed(call: dict) -> dict:
        call.update(model="m", cost=0.5, cost_is_estimate=False, usage={"prompt_tokens": 10, "completion_tokens": 3})
        return call

    lines = (directory / "calls.jsonl").read_text().splitlines()
    calls = [json.loads(line) for line in lines]
    calls[0] = billed(calls[0])
    calls[1] = {**billed(calls[1]), "attempts": 2}  # a retried call: its cost is two attempts'
    calls[2] = {**billed(calls[2]), "cost_is_estimate": True}
    (directory / "calls.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))

    class Learning(Counting):
        def learn_markup(self, bills):
            self.bills = list(bills)

    provider = Learning(1)
    continued(open_resume(directory), provider, None, None)
    assert [bill for bill in provider.bills if bill[0] == "m"] == [("m", 10, 3, 0.5)]
