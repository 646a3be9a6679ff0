"""Strategy text, shown literally, and the live pane that shows one agent at a time."""

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from acausal_tui.widgets.text import literal
from engine.models import StrategyRecord


def strategy_text(record: StrategyRecord, reasoning: bool = True) -> Text:
    """One strategy record: a heading, the rule, and (optionally) the full reply."""
    heading = f"Agent {record.agent_id} · round {record.round} · {record.kind}"
    if record.model:
        heading += f" · {record.model}"
    text = Text()
    text.append_text(literal(heading, style="bold"))
    if record.flags:
        text.append("  [" + ", ".join(record.flags) + "]", style="yellow")
    text.append("\nSTRATEGY: ", style="bold cyan")
    text.append_text(literal(record.strategy_text))
    if reasoning and record.full_reasoning and record.full_reasoning != record.strategy_text:
        text.append("\n\nFull reasoning:\n", style="bold")
        text.append_text(literal(record.full_reasoning))
    return text


class StrategyPane(Horizontal):
    """One round's strategies: the agent list on the left, one agent's text on the right.
    A new round replaces the last round's strategies as they come in (an agent whose strategy
    has not arrived says so). New strategies redraw the text at most once a second (the text
    changes height, which costs a layout pass), except that "no strategy yet" is replaced at
    once when the strategy arrives (it would be false); picking an agent redraws at once."""

    MIN_INTERVAL_S = 1.0

    def compose(self) -> ComposeResult:
        yield OptionList(id="agent-list")
        with VerticalScroll(id="strategy-scroll"):
            yield Static("waiting for the first strategy", id="strategy-text")

    def on_mount(self) -> None:
        self.round = 0
        self.records: dict[int, StrategyRecord] = {}  # this round's, by agent
        self.last_round: tuple[int, dict[int, StrategyRecord]] = (0, {})  # the round before
        self.shown: tuple[int, int, StrategyRecord | None] | None = None  # round, agent, record
        self.shown_at = float("-inf")

    def set_agents(self, labels: list[str]) -> None:
        agents = self.query_one(OptionList)
        agents.clear_options()
        agents.add_options([Option(label, id=str(i)) for i, label in enumerate(labels)])
        agents.highlighted = 0

    @property
    def selected(self) -> int:
        return self.query_one(OptionList).highlighted or 0

    def select(self, step: int) -> None:
        agents = self.query_one(OptionList)
        if agents.option_count:
            agents.highlighted = (self.selected + step) % agents.option_count

    @property
    def up_to_date(self) -> bool:
        """The text shows the selected agent's latest strategy (none held back)."""
        return self.shown == self.key()

    def key(self) -> tuple[int, int, StrategyRecord | None]:
        return self.round, self.selected, self.records.get(self.selected)

    def start_round(self, round: int) -> None:
        if round != self.round:
            self.last_round = (self.round, self.records)
            self.round, self.records = round, {}

    def add(self, record: StrategyRecord) -> None:
        if record.round != self.round:  # a resumed run's first event may be a strategy
            self.start_round(record.round)
        self.records[record.agent_id] = record

    def keep_rounds(self, last: int) -> None:
        """The run ended with `last` rounds saved: a round it discarded is never shown."""
        if self.round > last:
            round, records = self.last_round if self.last_round[0] == last else (last, {})
            self.round, self.records = round, records
            self.last_round = (0, {})

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show()

    def show(self, force: bool = True) -> None:
        key = self.key()
        if key == self.shown:
            return
        placeholder_out_of_date = self.shown is not None and self.shown[2] is None and key[:2] == self.shown[:2]
        if not force and not placeholder_out_of_date and time.monotonic() - self.shown_at < self.MIN_INTERVAL_S:
            return
        self.shown, self.shown_at = key, time.monotonic()
        round, agent, record = key
        if record is not None:
            text = strategy_text(record)
        else:
            text = Text(f"Agent {agent} · round {round}: no strategy yet" if round else "no strategy yet", style="dim")
        self.query_one("#strategy-text", Static).update(text)
        self.query_one("#strategy-scroll").scroll_home(animate=False)
