"""CSV export: the rows read back equal the JSON records, for an experiment and a sweep."""

import csv
import json
import shutil
from pathlib import Path

import msgspec
import pytest

import engine.export
from acausal_tui.cli import main
from engine.export import (
    AGENT_COLUMNS,
    EXPERIMENT_COLUMNS,
    GAME_COLUMNS,
    ID_COLUMNS,
    ROUND_COLUMNS,
    STRATEGY_COLUMNS,
    export_csv,
)
from engine.models import ExperimentResult, GameResult, RoundSummary, StrategyRecord
from engine.rng import keyed_rng
from engine.runner import run_experiment
from engine.stats import NOTE_NEAR_BOUND, NOTE_NO_SPREAD, NOTE_TOO_FEW, NOTE_WIDE
from engine.store import ExperimentStore, read_json
from engine.sweep import INTERVAL_METRICS, SWEEP_FILE, SweepResult, plan_sweep, run_sweep
from tests.support.fakes import FakeProvider

TRICKY = 'Commas, "quotes", [bold]markup[/bold], ünïcode, a \x1b[31mcolour\x1b[0m\nand a second line'
ROUNDS = 3


def reply(request) -> str:
    if request.key.startswith("strategy/"):
        agent = int(request.key.rsplit("/a", 1)[1])
        if agent == 1:
            return "no marker here, just prose"  # flagged marker_missing
        return f'{TRICKY}\n\nSTRATEGY: cooperate, mostly; say "hi"'
    roll = keyed_rng(3, request.key.rsplit("/", 1)[0]).random()  # the same on every try
    return "COOPERATE" if roll < 0.5 else "DEFECT" if roll < 0.9 else "Both, maybe?"  # some fall back


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def from_cells(row: dict[str, str], type_: type) -> object:
    """A CSV row back into a record, by the documented cell rules."""
    data: dict[str, object] = {}
    for field in msgspec.inspect.type_info(type_).fields:
        text = row[field.name]
        kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        if text == "" and any(isinstance(k, msgspec.inspect.NoneType) for k in kinds):
            data[field.name] = None
        elif isinstance(field.type, msgspec.inspect.ListType):
            data[field.name] = text.split(";") if text else []
        else:
            data[field.name] = text
    return msgspec.convert(data, type_, strict=False)


@pytest.fixture
async def experiment(make_config, tmp_path) -> Path:
    config = make_config(
        rounds=ROUNDS,
        population=[{"kind": "llm", "count": 3}, {"kind": "scripted", "strategy": "tit_for_tat", "count": 1}],
    )
    store = ExperimentStore(tmp_path / "exp_test")
    await run_experiment(config, provider=FakeProvider(reply), store=store)
    return store.directory


def json_records(directory: Path, name: str, type_: type) -> list:
    return [
        record
        for r in range(1, ROUNDS + 1)
        for record in read_json(directory / "rounds" / f"{name}_r{r}.json", list[type_])
    ]


async def test_experiment_csv_rows_equal_the_json_records(experiment):
    written, warnings = export_csv(experiment)
    out = experiment / "export"
    assert warnings == []
    assert sorted(p.name for p in written) == [
        "agent_rounds.csv",
        "agents.csv",
        "experiments.csv",
        "games.csv",
        "groups.csv",
        "rounds.csv",
        "strategies.csv",
    ]
    ids = {"experiment_id": "exp_test", "condition": "identity", "seed": "7"}

    games = read_rows(out / "games.csv")
    assert list(games[0]) == list(GAME_COLUMNS)
    assert all({k: row[k] for k in ids} == ids for row in games)
    expected_games = json_records(experiment, "games", GameResult)
    assert [from_cells(row, GameResult) for row in games] == expected_games
    assert any(g.player1_fallback or g.player2_fallback for g in expected_games)  # survive the trip

    strategies = read_rows(out / "strategies.csv")
    assert list(strategies[0]) == list(STRATEGY_COLUMNS)
    expected_strategies = json_records(experiment, "strategies", StrategyRecord)
    assert [from_cells(row, StrategyRecord) for row in strategies] == expected_strategies
    assert any(TRICKY in s.full_reasoning for s in expected_strategies)
    assert any(s.flags == ["marker_missing"] for s in expected_strategies)
    assert any(s.model is None for s in expected_strategies)  # the scripted agent

    rounds = read_rows(out / "rounds.csv")
    assert list(rounds[0]) == list(ROUND_COLUMNS)
    for row, r in zip(rounds, range(1, ROUNDS + 1), strict=True):
        summary = read_json(experiment / "rounds" / f"summary_r{r}.json", RoundSummary)
        flat = {
            **msgspec.structs.asdict(summary),
            **{f"score_{k}": v for k, v in msgspec.structs.asdict(summary.score_distribution).items()},
            **{f"power_{k}": v for k, v in msgspec.structs.asdict(summary.power_distribution).items()},
        }
        assert {k: row[k] for k in ROUND_COLUMNS[len(ID_COLUMNS) :]} == {
            k: "" if flat[k] is None else str(flat[k]) for k in ROUND_COLUMNS[len(ID_COLUMNS) :]
        }

    result = read_json(experiment / "experiment_results.json", ExperimentResult)
    agent_rounds = read_rows(out / "agent_rounds.csv")
    assert len(agent_rounds) == 4 * ROUNDS
    assert [(float(a["score"]), float(a["power"])) for a in agent_rounds[:4]] == list(
        zip(result.round_summaries[0].agent_scores, result.round_summaries[0].agent_powers, strict=True)
    )

    agents = read_rows(out / "agents.csv")
    assert list(agents[0]) == list(AGENT_COLUMNS)
    assert [(int(a["agent_id"]), a["kind"], a["strategy"], float(a["total_score"])) for a in agents] == [
        (a.id, a.kind, a.strategy or "", a.total_score) for a in result.agents
    ]
    groups = read_rows(out / "groups.csv")
    assert [(g["group"], g["agents"], g["cooperation_rate"]) for g in groups] == [
        (g.group, str(len(g.agents)), str(g.cooperation_rate)) for g in result.cooperation_breakdown.groups
    ]

    [summary_row] = read_rows(out / "experiments.csv")
    assert list(summary_row) == list(EXPERIMENT_COLUMNS)
    assert summary_row["status"] == "completed" and summary_row["simulated"] == "true"
    assert summary_row["history"] == "full" and summary_row["show_power"] == "true"
    for name, value in msgspec.structs.asdict(result.acausal_indicators).items():
        assert summary_row[name] == ("" if value is None else str(value))
    # the validity block: the fake's fallbacks make this run INVALID, and the CSV says so
    validity = result.validity
    assert validity is not None and not validity.valid
    assert summary_row["valid"] == "false" and summary_row["option_order"] == "fixed"
    assert summary_row["validity_reasons"] == ";".join(validity.reasons)
    assert summary_row["validity_fallback_moves"] == str(validity.fallback_moves)
    assert summary_row["validity_fallback_share"] == str(validity.fallback_share)
    assert summary_row["validity_cut_off_replies"] == "0"
    assert [(g["fallback_moves"]) for g in groups] == [
        str(g.fallback_moves) for g in result.cooperation_breakdown.groups
    ]


async def test_sweep_export_stacks_experiments_and_writes_sweep_rows(tmp_path):
    plan = plan_sweep(
        None,
        {
            "agents": 3,
            "rounds": 2,
            "seed": 5,
            "results_dir": str(tmp_path),
            "provider": {"name": "simulated"},  # 10% fallbacks: valid under 50%
            "validity": {"max_fallback_share": 0.5},
        },
        "baseline,identity",
        3,
        env={},
    )
    result, directory = await run_sweep(plan, [FakeProvider(reply) for _ in plan.runs()])
    out = tmp_path / "csv"
    written, warnings = export_csv(directory, out)
    assert warnings == [] and (out / "sweep.csv") in written
    experiments = read_rows(out / "experiments.csv")
    assert [(e["experiment_id"], e["condition"], e["seed"]) for e in experiments] == [
        (run.directory, run.condition, str(run.seed)) for run in result.experiments
    ]
    games = read_rows(out / "games.csv")
    assert len(games) == 6 * 3 * 2  # 6 experiments x 3 games x 2 rounds
    first = [from_cells(g, GameResult) for g in games if g["experiment_id"] == "exp_baseline_s5"]
    assert first == json_records_for(directory / "exp_baseline_s5", 2)

    rows = read_rows(out / "sweep.csv")
    saved = read_json(directory / SWEEP_FILE, SweepResult)
    per_condition = len(INTERVAL_METRICS) + 2  # the metrics with intervals and 2 rounds of cooperation
    assert len(rows) == 3 * per_condition  # 2 conditions + 1 difference
    identity = next(s for s in saved.summary if s.condition == "identity")
    row = next(
        r
        for r in rows
        if r["condition"] == "identity" and r["reference"] == "" and r["metric"] == "overall_cooperation_rate"
    )
    interval = identity.metrics["overall_cooperation_rate"]
    bound = lambda cell: None if cell == "" else float(cell)  # noqa: E731  (no interval: empty)
    assert (row["round"], int(row["n"]), float(row["mean"]), bound(row["ci_low"]), bound(row["ci_high"])) == (
        "",
        interval.n,
        interval.mean,
        interval.low,
        interval.high,
    )
    assert row["note"] == (interval.note or "")  # why there is no interval, or how far to trust it
    assert {r["note"] for r in rows} & {NOTE_TOO_FEW, NOTE_NO_SPREAD, NOTE_WIDE, NOTE_NEAR_BOUND}
    assert {r["simulated"] for r in rows} == {"true"}  # FakeProvider says it is simulated
    diff_round = next(r for r in rows if r["reference"] == "baseline" and r["round"] == "2")
    assert diff_round["metric"] == "cooperation_rate" and diff_round["condition"] == "identity"
    assert float(diff_round["mean"]) == saved.differences[0].cooperation_per_round[1].mean


def json_records_for(directory: Path, rounds: int) -> list[GameResult]:
    return [
        g for r in range(1, rounds + 1) for g in read_json(directory / "rounds" / f"games_r{r}.json", list[GameResult])
    ]


async def test_export_command(experiment, tmp_path, capsys):
    assert main(["export", str(experiment), "--format", "csv"]) == 0
    assert capsys.readouterr().out.strip() == str(experiment / "export")
    assert (experiment / "export" / "games.csv").exists()
    out = tmp_path / "elsewhere" / "csv"
    assert main(["export", str(experiment), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and (out / "strategies.csv").exists()


async def test_unreadable_round_is_skipped_with_a_warning_and_exit_1(experiment, capsys):
    (experiment / "rounds" / "games_r2.json").write_text("[{broken")
    assert main(["export", str(experiment)]) == 1
    out, err = capsys.readouterr()
    assert "acausal-tui: warning: skipped exp_test: games_r2.json: " in err
    games = read_rows(experiment / "export" / "games.csv")
    assert {g["round"] for g in games} == {"1", "3"}


@pytest.mark.parametrize("field", ["agent_scores", "agent_powers"])
async def test_a_summary_with_lists_of_the_wrong_length_skips_that_rounds_agent_rows(experiment, capsys, field):
    path = experiment / "rounds" / "summary_r2.json"
    data = json.loads(path.read_text())
    data[field] = data[field][:3]  # 4 agents
    path.write_text(json.dumps(data))
    assert main(["export", str(experiment)]) == 1
    out, err = capsys.readouterr()
    scores, powers = (3, 4) if field == "agent_scores" else (4, 3)
    assert err == (
        f"acausal-tui: warning: skipped exp_test: summary_r2.json: agent_rounds rows of round 2 "
        f"({scores} agent_scores and {powers} agent_powers for 4 agents)\n"
    )
    assert out.strip() == str(experiment / "export")
    agent_rounds = read_rows(experiment / "export" / "agent_rounds.csv")
    assert [int(a["round"]) for a in agent_rounds] == [1] * 4 + [3] * 4
    assert [r["round"] for r in read_rows(experiment / "export" / "rounds.csv")] == ["1", "2", "3"]
    assert {g["round"] for g in read_rows(experiment / "export" / "games.csv")} == {"1", "2", "3"}


async def test_a_sweep_exports_what_it_can_read(tmp_path, capsys, monkeypatch):
    """A bad summary, a missing experiment and one the tables cannot use: each reported on
    one line and skipped; every other row is written."""
    plan = plan_sweep(
        None,
        {"agents": 3, "rounds": 2, "seed": 5, "results_dir": str(tmp_path), "provider": {"name": "simulated"}},
        "baseline,identity",
        2,
        env={},
    )
    _, directory = await run_sweep(plan, [FakeProvider(reply) for _ in plan.runs()])
    summary = directory / "exp_baseline_s5" / "rounds" / "summary_r1.json"
    data = json.loads(summary.read_text())
    data["agent_powers"] = [*data["agent_powers"], 1.0]
    summary.write_text(json.dumps(data))
    shutil.rmtree(directory / "exp_baseline_s6")
    real = engine.export.experiment_values

    def experiment_values(result):  # anything the readers let through but the tables trip on
        if result.experiment_id == "exp_identity_s5":
            raise KeyError("strategy")
        return real(result)

    monkeypatch.setattr(engine.export, "experiment_values", experiment_values)
    out = tmp_path / "csv"
    assert main(["export", str(directory), "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "acausal-tui: warning: skipped exp_baseline_s5: summary_r1.json: agent_rounds rows of round 1 "
        "(3 agent_scores and 4 agent_powers for 3 agents)",
        "acausal-tui: warning: skipped exp_baseline_s6: manifest.json: missing",
        "acausal-tui: warning: skipped exp_identity_s5: cannot be exported: KeyError: 'strategy'",
    ]
    experiments = read_rows(out / "experiments.csv")
    assert [e["experiment_id"] for e in experiments] == ["exp_baseline_s5", "exp_identity_s6"]
    games = read_rows(out / "games.csv")
    assert {g["experiment_id"] for g in games} == {"exp_baseline_s5", "exp_identity_s6"}
    assert len(games) == 2 * 2 * 3  # 2 experiments x 2 rounds x 3 games
    agent_rounds = read_rows(out / "agent_rounds.csv")  # round 1 of exp_baseline_s5 skipped
    assert [(a["experiment_id"], a["round"]) for a in agent_rounds] == (
        [("exp_baseline_s5", "2")] * 3 + [("exp_identity_s6", "1")] * 3 + [("exp_identity_s6", "2")] * 3
    )
    assert read_rows(out / "sweep.csv")


@pytest.mark.parametrize(
    "target, flags, expected",
    [
        ("missing", [], "DIR: {dir} is not a directory"),
        ("empty", [], "DIR: {dir} is neither an experiment (manifest.json) nor a sweep (sweep.json)"),
        ("empty", ["--format", "xlsx"], "argument --format: invalid choice: 'xlsx' (choose from csv)"),
    ],
)
def test_bad_export_input_exits_2_with_one_line(tmp_path, capsys, target, flags, expected):
    (tmp_path / "empty").mkdir()
    directory = tmp_path / target
    assert main(["export", str(directory), *flags]) == 2
    out, err = capsys.readouterr()
    assert err.strip().replace("'csv'", "csv") == f"acausal-tui: error: {expected.format(dir=directory)}"
    assert out == "" and not (directory / "export").exists()


def test_export_of_an_experiment_missing_a_whole_round_warns(tmp_path, capsys):
    """It exited 0 with two of three rounds in rounds.csv; now it says which round is gone."""
    finished = Path(__file__).resolve().parent / "fixtures" / "results" / "exp_20250101_090000"
    directory = tmp_path / finished.name
    shutil.copytree(finished, directory)
    for path in (directory / "rounds").glob("*_r2.json"):
        path.unlink()
    assert main(["export", str(directory), "--out", str(tmp_path / "out")]) == 1
    assert "summary_r2.json: missing (round 2 of the 3 the result counts)" in capsys.readouterr().err


async def test_sweep_csv_says_how_many_experiments_were_left_out_as_invalid(tmp_path, monkeypatch):
    """sweep.csv alone shows that runs were dropped: a condition's rows count its invalid
    experiments, a difference's the seeds left out of either condition."""
    from tests.support.sweeps import judge_some_invalid, plan, sweep

    judge_some_invalid(monkeypatch)  # identity's seed 41 invalid
    _, directory = await sweep(plan(tmp_path, seeds=4))
    export_csv(directory, tmp_path / "csv")
    rows = read_rows(tmp_path / "csv" / "sweep.csv")
    excluded = {(r["condition"], r["reference"]): r["excluded"] for r in rows}
    assert excluded == {("baseline", ""): "0", ("identity", ""): "1", ("identity", "baseline"): "1"}
    identity = next(
        r for r in rows if (r["condition"], r["reference"], r["metric"]) == ("identity", "", "fallback_rate")
    )
    assert int(identity["n"]) == 3  # 4 seeds, 1 left out: the n says it, and now the column says why


async def test_every_table_says_whether_its_numbers_are_simulated(experiment, tmp_path):
    """A table read alone (rounds.csv in a notebook) still carries the SIMULATED mark."""
    written, _ = export_csv(experiment, tmp_path / "csv")
    for path in written:
        rows = read_rows(path)
        assert rows and {row["simulated"] for row in rows} == {"true"}, path.name


def test_an_interrupted_experiment_exports_as_interrupted(tmp_path):
    """No result file and no process holding it: `interrupted` is true (the browser's word),
    `status` stays the SPEC's `running`; and a stale result beside a `running` manifest (a
    resume killed before it wrote its own) is not the experiment's: no totals from it."""
    from tests.tui.conftest import FIXTURE_RESULTS

    name, done = "exp_20250103_100000", "exp_20250101_090000"
    shutil.copytree(FIXTURE_RESULTS / name, tmp_path / name)
    export_csv(tmp_path / name, tmp_path / "out")
    [row] = read_rows(tmp_path / "out" / "experiments.csv")
    assert (row["status"], row["interrupted"], row["total_cost"], row["unclean_stops"]) == ("running", "true", "", "0")

    shutil.copytree(FIXTURE_RESULTS / done, tmp_path / done)
    export_csv(tmp_path / done, tmp_path / "out2")
    [row] = read_rows(tmp_path / "out2" / "experiments.csv")
    assert (row["status"], row["interrupted"], row["total_rounds"]) == ("completed", "false", "3")
    manifest = json.loads((tmp_path / done / "manifest.json").read_text())
    manifest["status"], manifest["unclean_stops"] = "running", 1
    (tmp_path / done / "manifest.json").write_text(json.dumps(manifest))
    export_csv(tmp_path / done, tmp_path / "out3")
    [row] = read_rows(tmp_path / "out3" / "experiments.csv")
    assert (row["status"], row["interrupted"], row["total_rounds"], row["total_cost"], row["valid"]) == (
        "running",
        "true",
        "",
        "",
        "",
    )
    assert row["unclean_stops"] == "1"
