"""One experiment: its rounds, the games of a round (filterable by agent), one agent's
history exactly as it saw it, the strategies per round with full reasoning, and the
acausal indicators. Files that cannot be read are reported in place."""

from typing import Any, TypeVar

import msgspec
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Select, Static, TabbedContent, TabPane

from acausal_tui.screens.history import agent_lines, opponents_in_round, seen_history
from acausal_tui.widgets.indicators import indicator_value
from acausal_tui.widgets.strategy import strategy_text
from acausal_tui.widgets.text import literal, money, percent
from engine.analysis import INDICATOR_DOCS, compute_indicators
from engine.models import GameResult, StrategyRecord
from engine.prompts import NO_HISTORY, round_player_labels
from engine.store import LoadedExperiment

T = TypeVar("T")
ALL = -1
TABS = ("rounds", "games", "history", "strategies", "indicators")


class ExperimentScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="back"),
        *(Binding(str(n), f"tab('{tab}')", tab.capitalize(), id=f"tab_{tab}")
          for n, tab in enumerate(TABS, start=1)),
    ]

    def __init__(self, loaded: LoadedExperiment) -> None:
        super().__init__()
        assert loaded.manifest is not None
        self.loaded = loaded
        self.manifest = loaded.manifest
        self.rounds = sorted(loaded.summaries)
        self.agents = len(self.manifest.agents)
        self.errors: dict[str, str] = {}
        self._games: dict[int, list[GameResult]] = {}
        self._strategies: dict[int, list[StrategyRecord]] = {}

    # -- data -----------------------------------------------------------------------

    def _read(self, kind: str, round: int, cache: dict[int, list[Any]]) -> list[Any]:
        if round not in cache:
            try:
                cache[round] = getattr(self.loaded, kind)(round)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.errors[f"{kind}_r{round}.json"] = str(exc)
                cache[round] = []
        return cache[round]

    def games(self, round: int) -> list[GameResult]:
        return self._read("games", round, self._games)

    def strategies(self, round: int) -> list[StrategyRecord]:
        return self._read("strategies", round, self._strategies)

    def problems(self, *names: str) -> Text:
        text = Text()
        for name in names:
            if name in self.errors:
                text.append(f"\n{name} could not be read: ", style="bold red")
                text.append_text(literal(self.errors[name]))
        return text

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        last = self.rounds[-1] if self.rounds else None
        round_options = [(f"Round {r}", r) for r in self.rounds]
        agent_options = [(f"Agent {a.id} ({a.kind})", a.id) for a in self.manifest.agents]
        yield Static(self.overview(), id="experiment-title")
        with TabbedContent(id="tabs"):
            with TabPane("Rounds", id="rounds"):
                yield DataTable(cursor_type="row", zebra_stripes=True, id="rounds-table")
            with TabPane("Games", id="games"):
                with Horizontal(classes="filters"):
                    yield Select(round_options, value=last or Select.NULL, allow_blank=last is None,
                                 id="games-round")
                    yield Select([("All agents", ALL), *agent_options], value=ALL, allow_blank=False,
                                 id="games-agent")
                yield Static(id="games-problem")
                yield DataTable(zebra_stripes=True, id="games-table")
            with TabPane("History", id="history"):
                with Horizontal(classes="filters"):
                    yield Select(agent_options, value=0, allow_blank=False, id="history-agent")
                    yield Select(round_options, value=last or Select.NULL, allow_blank=last is None,
                                 id="history-round")
                with VerticalScroll():
                    yield Static(id="history-text")
            with TabPane("Strategies", id="strategies"):
                with Horizontal(classes="filters"):
                    yield Select(round_options, value=last or Select.NULL, allow_blank=last is None,
                                 id="strategies-round")
                with VerticalScroll():
                    yield Static(id="strategies-text")
            with TabPane("Indicators", id="indicators"):
                yield Static(id="indicators-source")
                yield DataTable(cursor_type="row", id="indicators-table")
        yield Footer()

    def overview(self) -> Text:
        m, result = self.manifest, self.loaded.result
        status = result.status if result else f"partial ({m.status})"
        text = Text(m.experiment_id, style="bold")
        text.append(f"  {status}")
        if m.simulated:
            text.append("  ")
            text.append(" SIMULATED ", style="bold black on yellow")
        text.append(f"\n{len(self.rounds)}/{m.config.rounds} rounds · {self.agents} agents · condition "
                    f"{m.condition.name} (identity {'on' if m.condition.identity else 'off'}, history "
                    f"{m.condition.history}, labels {m.condition.labels}) · seed {m.seed}\n")
        text.append(f"provider {m.provider} · models {m.main_model} (main), {m.sub_model} (sub)")
        if result:
            text.append(f" · {result.total_api_calls} calls · cost "
                        f"{money(result.total_cost, result.cost_is_estimate)}")
        text.append(f"\n{self.loaded.directory}", style="dim")
        message = (result.message if result else None) or m.message
        if message:
            text.append("\n")
            text.append_text(literal(message, style="yellow"))
        for problem in self.loaded.problems:
            text.append("\n")
            text.append_text(literal(problem, style="red"))
        return text

    def on_mount(self) -> None:
        table = self.query_one("#rounds-table", DataTable)
        table.add_columns("Round", "Cooperation", "Mutual C", "Avg score", "Score var", "Power min",
                          "Power mean", "Power max", "Similarity", "Fallbacks", "Duration")
        for r in self.rounds:
            s = self.loaded.summaries[r]
            p = s.power_distribution
            similarity = "—" if s.strategy_similarity is None else f"{s.strategy_similarity:.3f}"
            table.add_row(str(r), percent(s.cooperation_rate), percent(s.mutual_cooperation_rate),
                          f"{s.average_score:.2f}", f"{s.score_variance:.2f}", f"{p.min:.1f}",
                          f"{p.mean:.1f}", f"{p.max:.1f}", similarity, str(s.fallback_decisions),
                          f"{s.duration_s:.2f}s", key=str(r))
        self.query_one("#games-table", DataTable).add_columns(
            "Game", "Player 1", "Player 2", "Move 1", "Move 2", "Payoff 1", "Payoff 2", "Power 1",
            "Power 2", "Fallback")
        self.show_games()
        self.show_history()
        self.show_strategies()
        self.show_indicators()

    # -- the views ------------------------------------------------------------------

    def selected(self, widget_id: str) -> int | None:
        value = self.query_one(f"#{widget_id}", Select).value
        return value if isinstance(value, int) else None

    def on_select_changed(self, event: Select.Changed) -> None:
        widget = event.select.id or ""
        if widget.startswith("games-"):
            self.show_games()
        elif widget.startswith("history-"):
            self.show_history()
        elif widget.startswith("strategies-"):
            self.show_strategies()

    def show_games(self) -> None:
        table = self.query_one("#games-table", DataTable)
        table.clear()
        round, agent = self.selected("games-round"), self.selected("games-agent")
        if round is None:
            return
        labels = round_player_labels(self.manifest.seed, round, self.agents)
        games = self.games(round)
        self.query_one("#games-problem", Static).update(self.problems(f"games_r{round}.json"))
        for g in games:
            if agent not in (ALL, g.player1_id, g.player2_id):
                continue
            fallback = ", ".join(f"p{n}: {reason}" for n, reason in
                                 ((1, g.player1_fallback), (2, g.player2_fallback)) if reason)
            table.add_row(
                g.game_id, f"{g.player1_id} ({labels.get(g.player1_id, '?')})",
                f"{g.player2_id} ({labels.get(g.player2_id, '?')})", g.player1_action, g.player2_action,
                f"{g.player1_payoff:.2f}", f"{g.player2_payoff:.2f}", f"{g.player1_power_before:.1f}",
                f"{g.player2_power_before:.1f}", literal(fallback), key=g.game_id,
            )

    def show_history(self) -> None:
        agent, round = self.selected("history-agent"), self.selected("history-round")
        target = self.query_one("#history-text", Static)
        if agent is None or round is None:
            target.update(Text("no completed round", style="dim"))
            return
        target.update(self.history_text(agent, round))

    def history_text(self, agent: int, round: int) -> Text:
        """What agent `agent`'s decisions in round `round` were shown, as they saw it."""
        m = self.manifest
        by_round = {r: self.games(r) for r in self.rounds if r <= round}
        lines = agent_lines(by_round, agent, m.seed, self.agents, m.condition)
        history = seen_history(lines, round, m.condition)
        strategy = next((s for s in self.strategies(round) if s.agent_id == agent), None)
        info = m.agents[agent]
        text = Text(f"Agent {agent} ({info.kind}) — what its decisions in round {round} saw\n",
                    style="bold")
        text.append(f"labels {m.condition.labels} · history {m.condition.history}; opponents appear "
                    "under the labels this agent saw, never by id\n", style="dim")
        if info.kind == "scripted":
            text.append(f"scripted ({info.strategy}): it decides from its history with the current "
                        "opponent only; the lines below are that history in prompt form\n", style="dim")
        text.append("\nYour strategy:\n", style="bold")
        text.append_text(literal(strategy.strategy_text) if strategy else Text("—", style="dim"))
        text.append("\n\nGame history so far:\n", style="bold")
        text.append(history or NO_HISTORY)
        opponents = opponents_in_round(self.games(round), agent, m.seed, self.agents, m.condition, round)
        text.append(f"\n\nCurrent opponents in round {round}, one game each:\n", style="bold")
        text.append(", ".join(f"Opponent {label}" for label in opponents) or "—")
        text.append(f"\n\nIts round {round} games (history from round {round + 1} on):\n", style="bold")
        text.append("\n".join(line for r, line in lines if r == round) or "—")
        text.append_text(self.problems(*(f"games_r{r}.json" for r in by_round), f"strategies_r{round}.json"))
        return text

    def show_strategies(self) -> None:
        round = self.selected("strategies-round")
        target = self.query_one("#strategies-text", Static)
        if round is None:
            target.update(Text("no completed round", style="dim"))
            return
        text = Text()
        for record in self.strategies(round):
            text.append_text(strategy_text(record))
            text.append("\n\n" + "─" * 60 + "\n\n", style="dim")
        text.append_text(self.problems(f"strategies_r{round}.json"))
        target.update(text)

    def show_indicators(self) -> None:
        result = self.loaded.result
        if result is not None:
            indicators = result.acausal_indicators
            source = "From experiment_results.json"
        else:
            strategies = [s for r in self.rounds for s in self.strategies(r)]
            games = [g for r in self.rounds for g in self.games(r)]
            indicators = compute_indicators(strategies, games, [self.loaded.summaries[r] for r in self.rounds])
            source = "No result file: computed from the round files that could be read"
        self.query_one("#indicators-source", Static).update(Text(source, style="dim"))
        table = self.query_one("#indicators-table", DataTable)
        table.add_columns("Indicator", "Value", "Formula")
        for name in indicators.__struct_fields__:
            table.add_row(name, indicator_value(name, getattr(indicators, name)),
                          INDICATOR_DOCS.get(name, ""), key=name)

    # -- actions --------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_back(self) -> None:
        self.app.pop_screen()
