"""Tidy CSV export of an experiment or a sweep, one row per observation, for pandas or R.

Cells: empty = null; booleans `true`/`false`; floats written so they read back exactly;
lists joined with `;`. Every table starts with experiment_id, condition, seed, so the
tables of a sweep's experiments stack into one file each. The columns are in docs/results.md."""

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from engine.analysis import agent_group
from engine.errors import ExportError
from engine.lock import unfinished_state
from engine.models import GameResult, StrategyRecord, Validity
from engine.store import load_experiment, write_atomic
from engine.sweep_file import METRICS, SWEEP_FILE, SweepResult, load_sweep
from engine.sweep_summary import experiment_values
from engine.validity import verdict

# Tables of column names, kept as tables:
# fmt: off
ID_COLUMNS = ("experiment_id", "condition", "seed", "simulated")  # every table says if its numbers are simulated
GAME_COLUMNS = (*ID_COLUMNS, *GameResult.__struct_fields__)
STRATEGY_COLUMNS = (*ID_COLUMNS, *StrategyRecord.__struct_fields__)
ROUND_COLUMNS = (
    *ID_COLUMNS, "round", "cooperation_rate", "mutual_cooperation_rate", "average_score",
    "score_variance", "score_min", "score_max", "score_avg", "power_mean", "power_std",
    "power_min", "power_max", "strategy_similarity", "fallback_decisions", "duration_s",
    "fallback_rate", "cooperation_rate_fresh",
)
AGENT_ROUND_COLUMNS = (*ID_COLUMNS, "round", "agent_id", "score", "power")
AGENT_COLUMNS = (
    *ID_COLUMNS, "agent_id", "kind", "group", "strategy", "model", "sub_model",
    "initial_power", "final_power", "total_score",
)
GROUP_COLUMNS = (
    *ID_COLUMNS, "group", "agents", "moves", "cooperation_rate",
    "in_group_cooperation_rate", "out_group_cooperation_rate", "fallback_moves",
)
# The validity block (SPEC §6), prefixed: `valid` and `validity_reasons` (joined with `;`)
VALIDITY_COLUMNS = ("valid", "validity_reasons", *(
    f"validity_{name}" for name in Validity.__struct_fields__ if name not in ("valid", "reasons")))
EXPERIMENT_COLUMNS = (
    *ID_COLUMNS, "preset", "identity", "history", "labels", "on_unparseable", "show_power",
    "status", "interrupted", "provider", "main_model", "sub_model", "agents", "rounds",
    "total_rounds", "total_games", "total_api_calls", "total_retries", "total_cost",
    "cost_is_estimate", "error_count", "unclean_stops", "option_order", *VALIDITY_COLUMNS, *METRICS,
)
SWEEP_COLUMNS = (
    "condition", "reference", "metric", "round", "n", "mean", "ci_low", "ci_high", "note", "excluded", "simulated",
)
# fmt: on


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(cell(v) for v in value)
    return str(value)  # str(float) is the shortest text that reads back as the same float


@dataclass
class Tables:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def extend(self, other: "Tables") -> None:
        for table, rows in other.rows.items():
            self.rows.setdefault(table, []).extend(rows)
        self.warnings += other.warnings


# fmt: off
COLUMNS = {
    "experiments": EXPERIMENT_COLUMNS, "agents": AGENT_COLUMNS, "groups": GROUP_COLUMNS,
    "rounds": ROUND_COLUMNS, "agent_rounds": AGENT_ROUND_COLUMNS, "games": GAME_COLUMNS,
    "strategies": STRATEGY_COLUMNS, "sweep": SWEEP_COLUMNS,
}
# fmt: on


def collect_experiment(directory: Path, tables: Tables, condition: str | None = None) -> None:
    """Add one experiment's rows; `condition` names it in a sweep (else the preset's name).
    What cannot be read is skipped with a warning; an experiment that cannot be read at all
    adds no rows, only a warning."""
    own = Tables()
    try:
        _collect(directory, own, condition)
    except Exception as exc:  # content the readers let through but the tables cannot use
        tables.warnings += own.warnings
        tables.warnings.append(f"{directory.name}: cannot be exported: {type(exc).__name__}: {exc}")
        return
    tables.extend(own)


def _collect(directory: Path, tables: Tables, condition: str | None) -> None:
    loaded = load_experiment(directory)
    tables.warnings += [f"{directory.name}: {problem}" for problem in loaded.problems]
    manifest, result = loaded.manifest, loaded.current_result
    if manifest is None:
        return
    ids = {
        "experiment_id": manifest.experiment_id,
        "condition": condition or manifest.condition.name,
        "seed": manifest.seed,
        "simulated": manifest.simulated,
    }
    c = manifest.condition
    row = {
        **ids,
        "preset": c.name,
        "identity": c.identity,
        "history": c.history,
        "labels": c.labels,
        "on_unparseable": c.on_unparseable,
        "show_power": c.show_power,
        "option_order": c.option_order,
        "status": result.status if result else manifest.status,
        # no result and no process writing it: killed or crashed (`acausal-tui resume` goes on)
        "interrupted": result is None and unfinished_state(manifest.status, directory) == "interrupted",
        "unclean_stops": manifest.unclean_stops,  # the result's, when there is one (the same)
        "provider": manifest.provider,
        "main_model": manifest.main_model,
        "sub_model": manifest.sub_model,
        "agents": len(manifest.agents),
        "rounds": manifest.config.rounds,
    }
    if result:
        row.update(
            {
                name: getattr(result, name)
                for name in (
                    "total_rounds",
                    "total_games",
                    "total_api_calls",
                    "total_retries",
                    "total_cost",
                    "cost_is_estimate",
                    "error_count",
                    "unclean_stops",
                )
            }
        )
        row.update(experiment_values(result)[0])
        if result.validity is not None:  # empty cells for files written before validity checks
            row.update(validity_cells(result.validity))
    tables.add("experiments", row)
    for agent in result.agents if result else manifest.agents:
        tables.add(
            "agents", {**ids, "agent_id": agent.id, "group": agent_group(agent), **msgspec.structs.asdict(agent)}
        )
    if result and result.cooperation_breakdown:
        for group in result.cooperation_breakdown.groups:
            tables.add("groups", {**ids, **msgspec.structs.asdict(group), "agents": len(group.agents)})
    for number, summary in sorted(loaded.summaries.items()):
        scores, powers = summary.score_distribution, summary.power_distribution
        tables.add(
            "rounds",
            {
                **ids,
                **msgspec.structs.asdict(summary),
                "score_min": scores.min,
                "score_max": scores.max,
                "score_avg": scores.avg,  # always equal to average_score (kept: the columns stay as they were)
                "power_mean": powers.mean,
                "power_std": powers.std,
                "power_min": powers.min,
                "power_max": powers.max,
            },
        )
        agents = len(manifest.agents)
        if len(summary.agent_scores) == len(summary.agent_powers) == agents:
            pairs = zip(summary.agent_scores, summary.agent_powers, strict=True)
            for agent_id, (score, power) in enumerate(pairs):
                tables.add(
                    "agent_rounds", {**ids, "round": number, "agent_id": agent_id, "score": score, "power": power}
                )
        else:
            tables.warnings.append(
                f"{directory.name}: summary_r{number}.json: agent_rounds rows of round {number} "
                f"({len(summary.agent_scores)} agent_scores and {len(summary.agent_powers)} agent_powers "
                f"for {agents} agents)"
            )
        for table, read in (("games", loaded.games), ("strategies", loaded.strategies)):
            try:
                records = read(number)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                tables.warnings.append(f"{directory.name}: {table}_r{number}.json: {exc}")
                continue
            for record in records:
                tables.add(table, {**ids, **msgspec.structs.asdict(record)})


def validity_cells(validity: Validity) -> dict[str, Any]:
    """The validity block's cells; `valid` empty where the run was not judged (`verdict`)."""
    fields = msgspec.structs.asdict(validity)
    del fields["valid"]
    return {
        "valid": verdict(validity),
        "validity_reasons": fields.pop("reasons"),
        **{f"validity_{name}": value for name, value in fields.items()},
    }


def sweep_rows(result: SweepResult) -> Iterable[dict[str, Any]]:
    """Long format: one row per (condition[, reference], metric[, round])."""
    groups = [(s.condition, None, s.metrics, s.cooperation_per_round) for s in result.summary]
    groups += [(d.condition, d.reference, d.metrics, d.cooperation_per_round) for d in result.differences]
    invalid: dict[str, set[int]] = {}  # the seeds each condition's invalid experiments were left out at
    for run in result.excluded:
        invalid.setdefault(run.condition, set()).add(run.seed)
    for condition, reference, metrics, per_round in groups:
        # how many experiments (a difference: seeds of either condition) were left out as invalid
        excluded = len(invalid.get(condition, set()) | invalid.get(reference or condition, set()))
        named = [(name, None, interval) for name, interval in metrics.items()]
        named += [("cooperation_rate", r, interval) for r, interval in enumerate(per_round, start=1)]
        for metric, round, interval in named:
            yield {
                "condition": condition,
                "reference": reference,
                "metric": metric,
                "round": round,
                "n": interval.n,
                "mean": interval.mean,
                "ci_low": interval.low,
                "ci_high": interval.high,
                "note": interval.note,  # why there is no interval, or how far to trust it
                "excluded": excluded,
                "simulated": result.simulated,
            }


def render_csv(columns: Sequence[str], rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell(row.get(column)) for column in columns] for row in rows)
    return buffer.getvalue().encode()


def export_csv(directory: Path, out: Path | None = None) -> tuple[list[Path], list[str]]:
    """Write the CSV tables of an experiment or sweep directory into `out` (default
    DIR/export). Returns the files written and warnings about what could not be read."""
    if not directory.is_dir():
        raise ExportError(f"DIR: {directory} is not a directory")
    tables = Tables()
    if (directory / SWEEP_FILE).exists():
        loaded = load_sweep(directory)
        if loaded.result is None:
            raise ExportError(f"DIR: {directory}: {loaded.problem}")
        for run in loaded.result.experiments:
            collect_experiment(directory / run.directory, tables, run.condition)
        for row in sweep_rows(loaded.result):
            tables.add("sweep", row)
    elif (directory / "manifest.json").exists():
        collect_experiment(directory, tables)
        if not tables.rows:
            raise ExportError(f"DIR: {directory}: {'; '.join(tables.warnings)}")
    else:
        raise ExportError(f"DIR: {directory} is neither an experiment (manifest.json) nor a sweep (sweep.json)")
    out = out or directory / "export"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table, columns in COLUMNS.items():
        if table == "sweep" and "sweep" not in tables.rows:
            continue
        path = out / f"{table}.csv"
        write_atomic(path, render_csv(columns, tables.rows.get(table, [])))
        written.append(path)
    return written, tables.warnings
