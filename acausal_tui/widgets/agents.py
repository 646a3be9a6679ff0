"""The live per-agent table of the run screen: id, kind, model, power, round score, total
score, cooperation (model-decided moves) and power over the rounds as a sparkline; one row
per agent, updated in place by row key once per round."""

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import DataTable

from acausal_tui.widgets.text import cells, percent
from engine.events import Event, GameFinished, RoundSummarised, RunStarted

SPARK = "▁▂▃▄▅▆▇█"
POWER_MIN, POWER_MAX = 50.0, 150.0  # powers are clamped to this range (SPEC §4)
COLUMNS = ("Id", "Kind", "Model", "Power", "Round", "Total", "Coop", "Power over rounds")


def sparkline(values: list[float], low: float = POWER_MIN, high: float = POWER_MAX, width: int = 20) -> str:
    """One block per value on a fixed scale (so agents compare at a glance); the last `width`."""
    span = high - low
    return "".join(SPARK[max(0, min(7, int((v - low) / span * 7.999)))] for v in values[-width:])


class AgentsTable(DataTable):
    DEFAULT_CSS = "AgentsTable { height: 1fr; display: none; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id, classes=classes)
        self.powers: dict[int, list[float]] = {}
        self.totals: dict[int, float] = {}
        self.moves: dict[int, list[int]] = {}  # agent -> [model-decided moves, cooperations]

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name)

    def apply(self, events: Iterable[Event]) -> None:
        """Fold a batch of engine events in; rows change once per round."""
        for event in events:
            if isinstance(event, RunStarted):
                self.start(event)
            elif isinstance(event, GameFinished):
                g = event.game
                for agent, action, fallback in (
                    (g.player1_id, g.player1_action, g.player1_fallback),
                    (g.player2_id, g.player2_action, g.player2_fallback),
                ):
                    if fallback is None:  # fallback moves are not a model's choice (SPEC §6)
                        counts = self.moves.setdefault(agent, [0, 0])
                        counts[0] += 1
                        counts[1] += action == "COOPERATE"
            elif isinstance(event, RoundSummarised):
                self.summarised(event)

    def start(self, event: RunStarted) -> None:
        self.clear()
        self.powers = {a.id: [a.initial_power] for a in event.manifest.agents}
        self.totals = {a.id: a.total_score for a in event.manifest.agents}
        self.moves = {}
        for a in event.manifest.agents:
            model = (a.model or "") if a.kind == "llm" else (a.strategy or "")
            self.add_row(
                *cells(
                    str(a.id),
                    a.kind,
                    model,
                    f"{a.initial_power:.1f}",
                    "—",
                    f"{a.total_score:.2f}",
                    "—",
                    sparkline(self.powers[a.id]),
                ),
                key=str(a.id),
            )

    def summarised(self, event: RoundSummarised) -> None:
        s = event.summary
        for agent, score in enumerate(s.agent_scores):
            key = str(agent)
            if agent not in self.powers:
                continue
            self.totals[agent] = self.totals.get(agent, 0.0) + score
            if agent < len(s.agent_powers):
                self.powers[agent].append(s.agent_powers[agent])
            moves, cooperate = self.moves.get(agent, [0, 0])
            updates = {
                "Power": f"{self.powers[agent][-1]:.1f}",
                "Round": f"{score:.2f}",
                "Total": f"{self.totals[agent]:.2f}",
                "Coop": percent(cooperate / moves if moves else None),
                "Power over rounds": sparkline(self.powers[agent]),
            }
            for column, value in updates.items():
                self.update_cell(key, column, Text(value))
