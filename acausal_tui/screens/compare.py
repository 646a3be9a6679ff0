"""A sweep's conditions side by side: every metric's mean and 95% t-interval per condition,
each condition's paired difference from the reference, convergence as "k of n seeds",
cooperation per round charted per condition, the invalid experiments left out, and the
sweep's experiments (enter opens one)."""

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from acausal_tui.messages import OpenExperiment
from acausal_tui.widgets.chart import CoopChart
from acausal_tui.widgets.footer import Footer
from acausal_tui.widgets.text import cells, literal, percent
from engine.conditions import set_switches
from engine.stats import NOTE_NEAR_BOUND, NOTE_NO_SPREAD, NOTE_TOO_FEW, Interval
from engine.sweep import (
    CONVERGENCE,
    INTERVAL_METRICS,
    SHARE_METRICS,
    ConditionStats,
    Difference,
    LoadedSweep,
    SweepResult,
    convergence_text,
    guessed_line,
    unclean_line,
)

# Metrics that are shares of moves or strategies (shown as %); the rest are plain numbers.
SHARES = SHARE_METRICS
# They count marker words in strategy texts, not reasoning (README, docs/validity.md).
KEYWORD_METRICS = {"identity_reasoning_frequency", "surprise_at_defection"}


def number(value: float, share: bool, signed: bool = False) -> str:
    if share:
        return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def interval_cell(interval: Interval, share: bool, signed: bool = False, seeds: int | None = None) -> str:
    """'61.2% [55.0, 67.1]'; a difference of shares in percentage points: '+12.3 pt [...]';
    '*' after an interval near 0% or 100% (it covers less than 95%, see the title); the
    number of seeds behind it when it is not the `seeds` of its column (a seed with nothing
    to count, such as no unequal game, is left out of that metric)."""
    if interval.mean is None:
        return "—"
    unit = (" pt" if signed else "%") if share else ""
    text = number(interval.mean, share, signed) + unit
    if interval.low is None or interval.high is None:
        if interval.note == NOTE_TOO_FEW:
            return f"{text} (n={interval.n}, too small)"
        return f"{text} (no spread)" if interval.note == NOTE_NO_SPREAD else text
    mark = "*" if NOTE_NEAR_BOUND in (interval.note or "") else ""
    over = f" n={interval.n}" if seeds is not None and interval.n != seeds else ""
    return f"{text} [{number(interval.low, share)}, {number(interval.high, share)}]{mark}{over}"


def seeds(stats: ConditionStats | Difference) -> int:
    """The seeds a column is over (a difference: the seeds counted in both conditions)."""
    return stats.metrics["overall_cooperation_rate"].n


def fill_metrics(table: DataTable, result: SweepResult) -> None:
    """Every metric's mean [interval] per condition, then each difference from the reference
    (also the summary at the end of the live sweep screen)."""
    table.add_column("metric")
    for stats in result.summary:
        n = stats.metrics["overall_cooperation_rate"].n
        table.add_column(literal(f"{stats.condition} (n={n})"))
    for diff in result.differences:
        table.add_column(literal(f"{diff.condition} − {diff.reference}"))
    for metric in INTERVAL_METRICS:
        share = metric in SHARES
        table.add_row(
            *cells(
                f"{metric} (keywords)" if metric in KEYWORD_METRICS else metric,
                *(interval_cell(s.metrics[metric], share, seeds=seeds(s)) for s in result.summary),
                *(interval_cell(d.metrics[metric], share, signed=True, seeds=seeds(d)) for d in result.differences),
            )
        )
    table.add_row(
        *cells(
            CONVERGENCE,
            *(convergence_text(s.convergence).removeprefix("converged in ") for s in result.summary),
            *("—" for _ in result.differences),
        )
    )


def sweep_title(r: SweepResult) -> Text:
    """Which sweep, SIMULATED when so, how its intervals were made, and what was left out."""
    text = Text.assemble(("Sweep ", "bold"), r.sweep_id)
    if r.simulated:
        text.append(" ")
        text.append(" SIMULATED ", style="bold black on yellow")
    text.append(f" · {r.status} · {len(r.seeds)} seeds per condition · ")
    if shared := set_switches(r.config.switches, r.resolved_conditions.values()):
        text.append_text(literal(f"every condition with {shared} · "))
    if r.intervals is None:
        text.append("intervals of an older version (percentile bootstrap, too narrow for few seeds)", style="bold red")
    else:
        text.append(
            f"mean [{100 * r.intervals.confidence:.0f}% Student-t interval] over valid completed "
            f"seeds; differences paired by seed; none below {r.intervals.min_seeds} seeds"
        )
        if len(r.seeds) < r.intervals.wide_below:
            text.append(f"; fewer than {r.intervals.wide_below} seeds: wide by nature")
        text.append("; * near 0% or 100%: covers less than 95%; no spread: every seed gave the same value")
    if r.excluded:
        text.append(f"\nLeft out as INVALID ({len(r.excluded)}): ", style="bold red")
        text.append_text(
            literal("; ".join(f"{run.condition} s{run.seed} ({', '.join(run.reasons)})" for run in r.excluded))
        )
    if r.validity_not_recorded:
        text.append(
            f"\nCounted without a validity record: {len(r.validity_not_recorded)} experiment(s)", style="yellow"
        )
    for line in (guessed_line(r), unclean_line(r)):
        if line is not None:
            text.append("\n")
            text.append_text(literal(line, style="yellow"))
    if r.message:
        text.append(" · ")
        text.append_text(literal(r.message))
    return text


class CompareScreen(Screen):
    # Its CSS: compare.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [Binding("escape", "back", "Back", id="back")]

    def __init__(self, loaded: LoadedSweep) -> None:
        super().__init__()
        assert loaded.result is not None
        self.loaded = loaded
        self.result: SweepResult = loaded.result

    def compose(self) -> ComposeResult:
        yield Static(self.title_text(), id="compare-title")
        with VerticalScroll():
            yield DataTable(zebra_stripes=True, id="compare-metrics")
            with Horizontal(id="compare-rounds-row"):
                yield DataTable(zebra_stripes=True, id="compare-rounds")
                with Vertical(id="compare-charts"):
                    for stats in self.result.summary:
                        yield Static(literal(f"{stats.condition}: cooperation per round (mean)"), classes="chart-label")
                        yield CoopChart()
            yield DataTable(cursor_type="row", zebra_stripes=True, id="compare-experiments")
        yield Footer()

    def title_text(self) -> Text:
        return sweep_title(self.result)

    def on_mount(self) -> None:
        r = self.result
        fill_metrics(self.query_one("#compare-metrics", DataTable), r)
        rounds = self.query_one("#compare-rounds", DataTable)
        rounds.add_column("round")
        for stats in r.summary:
            rounds.add_column(literal(stats.condition))
        for diff in r.differences:
            rounds.add_column(literal(f"{diff.condition} − {diff.reference}"))
        count = max((len(s.cooperation_per_round) for s in r.summary), default=0)
        for index in range(count):
            rounds.add_row(
                *cells(
                    str(index + 1),
                    *(interval_cell(s.cooperation_per_round[index], True, seeds=seeds(s)) for s in r.summary),
                    *(
                        interval_cell(d.cooperation_per_round[index], True, signed=True, seeds=seeds(d))
                        for d in r.differences
                    ),
                )
            )
        for chart, stats in zip(self.query(CoopChart), r.summary, strict=True):
            chart.set_rates([i.mean for i in stats.cooperation_per_round if i.mean is not None])
        experiments = self.query_one("#compare-experiments", DataTable)
        experiments.add_columns("condition", "seed", "status", "rounds", "cooperation", "directory")
        for run in r.experiments:
            experiments.add_row(
                *cells(
                    run.condition,
                    str(run.seed),
                    run.status + (" INVALID" if run.valid is False else ""),
                    str(run.rounds),
                    percent(run.metrics.get("overall_cooperation_rate")),
                    run.directory,
                ),
                key=run.directory,
            )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "compare-experiments":
            return
        self.post_message(OpenExperiment(self.loaded.directory / str(event.row_key.value)))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
