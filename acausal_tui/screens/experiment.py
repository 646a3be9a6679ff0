"""One experiment: its rounds, the games of a round (filterable by agent), one agent's
history exactly as it saw it, the strategies per round with full reasoning, and the
acausal indicators. Files that cannot be read, or that decode but make no sense (an agent
id out of range), are reported in place. Round files are read off the event loop, in a
worker thread; a view shows "loading…" until its files are in."""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import msgspec
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Select, Static, TabbedContent, TabPane

from acausal_tui.screens.history import agent_lines, game_number, opponents_in_round, seen_history
from acausal_tui.widgets.indicators import indicator_value
from acausal_tui.widgets.strategy import strategy_text
from acausal_tui.widgets.text import cells, literal, money, percent
from engine.analysis import INDICATOR_DOCS, INDICATORS_NOTE, compute_indicators
from engine.models import GameResult, StrategyRecord
from engine.prompts import NO_HISTORY, round_player_labels
from engine.store import LoadedExperiment
from engine.validity import validity_line

T = TypeVar("T")
ALL = -1
TABS = ("rounds", "games", "history", "strategies", "indicators")
LOADING = Text("loading…", style="dim")


class ExperimentScreen(Screen):
    # Its CSS: experiment.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [
        Binding("escape", "back", "Back", id="back"),
        *(Binding(str(n), f"tab('{tab}')", tab.capitalize(), id=f"tab_{tab}")
          for n, tab in enumerate(TABS, start=1)),
        Binding("s", "strategy", "Strategy call", id="strategy"),  # History tab's agent and round
        Binding("g", "games", "Its games", id="games"),  # History tab: the round's games, enter opens one
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
        """A round's records, read once; a file that cannot be read or makes no sense is
        recorded in `errors` and counts as empty. Called from a worker thread."""
        if round not in cache:
            try:
                records = getattr(self.loaded, kind)(round)  # checked to fit the experiment
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.errors[f"{kind}_r{round}.json"] = str(exc)
                records = []
            cache[round] = records
        return cache[round]

    def games(self, round: int) -> list[GameResult]:
        return self._read("games", round, self._games)

    def strategies(self, round: int) -> list[StrategyRecord]:
        return self._read("strategies", round, self._strategies)

    def read(self, games: Sequence[int], strategies: Sequence[int]) -> None:
        for round in games:
            self.games(round)
        for round in strategies:
            self.strategies(round)

    def show(self, view: str, fill: Callable[[], None], games: Sequence[int] = (),
             strategies: Sequence[int] = ()) -> None:
        """Read the round files `fill` needs off the event loop, then `fill` the view (at
        once when they were read before). A newer request for the same view replaces one
        still loading. Whatever `fill` raises is shown, never crashes the app."""
        missing_games = [r for r in games if r not in self._games]
        missing_strategies = [r for r in strategies if r not in self._strategies]

        async def load() -> None:
            try:
                await anyio.to_thread.run_sync(self.read, missing_games, missing_strategies)
            except Exception as exc:  # read() records what it expects; anything else shows here
                self.set_status(view, literal(f"could not read: {type(exc).__name__}: {exc}",
                                              style="bold red"))
                return
            self.fill(view, fill)

        if missing_games or missing_strategies:
            self.show_loading(view)
            # The function, not a coroutine: a request replaced before it starts is never awaited.
            self.run_worker(load, group=view, exclusive=True, exit_on_error=False)
        else:
            self.workers.cancel_group(self, view)  # an older, slower request must not win
            self.fill(view, fill)

    def fill(self, view: str, fill: Callable[[], None]) -> None:
        self.set_status(view, Text())
        try:
            fill()
        except Exception as exc:  # content that passed the checks but still makes no sense
            self.set_status(view, literal(f"this view could not be shown: {type(exc).__name__}: {exc}",
                                          style="bold red"))

    def show_loading(self, view: str) -> None:
        """Not `loading`: that name is Textual's Widget.loading (a screen always "loading"
        blocks scrolling and shows a wait cursor)."""
        self.set_status(view, LOADING)

    def set_status(self, view: str, text: Text) -> None:
        """The line above a view: loading, or what could not be read or shown."""
        status = self.query_one(f"#{view}-problem", Static)
        status.update(text)
        status.display = bool(text)

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
        round = last if last is not None else Select.NULL
        round_options = [(f"Round {r}", r) for r in self.rounds]
        agent_options = [(literal(f"Agent {a.id} ({a.kind})"), a.id) for a in self.manifest.agents]
        agent = agent_options[0][1] if agent_options else Select.NULL
        yield Static(self.overview(), id="experiment-title")
        with TabbedContent(id="tabs"):
            with TabPane("Rounds", id="rounds"):
                yield DataTable(cursor_type="row", zebra_stripes=True, id="rounds-table")
            with TabPane("Games", id="games"):
                with Horizontal(classes="filters"):
                    yield Select(round_options, value=round, allow_blank=last is None,
                                 id="games-round")
                    yield Select([("All agents", ALL), *agent_options], value=ALL, allow_blank=False,
                                 id="games-agent")
                yield Static(id="games-problem", classes="view-status")
                yield DataTable(zebra_stripes=True, id="games-table")
            with TabPane("History", id="history"):
                with Horizontal(classes="filters"):
                    yield Select(agent_options, value=agent, allow_blank=not agent_options,
                                 id="history-agent")
                    yield Select(round_options, value=round, allow_blank=last is None,
                                 id="history-round")
                yield Static(id="history-problem", classes="view-status")
                with VerticalScroll():
                    yield Static(id="history-text")
            with TabPane("Strategies", id="strategies"):
                with Horizontal(classes="filters"):
                    yield Select(round_options, value=round, allow_blank=last is None,
                                 id="strategies-round")
                yield Static(id="strategies-problem", classes="view-status")
                with VerticalScroll():
                    yield Static(id="strategies-text")
            with TabPane("Indicators", id="indicators"):
                yield Static(id="indicators-source")
                yield Static(id="indicators-problem", classes="view-status")
                yield DataTable(cursor_type="row", id="indicators-table")
        yield Footer()

    def overview(self) -> Text:
        m, result = self.manifest, self.loaded.result
        status = result.status if result else f"partial ({m.status})"
        text = literal(m.experiment_id, style="bold")
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
            table.add_row(*cells(str(r), percent(s.cooperation_rate), percent(s.mutual_cooperation_rate),
                                 f"{s.average_score:.2f}", f"{s.score_variance:.2f}", f"{p.min:.1f}",
                                 f"{p.mean:.1f}", f"{p.max:.1f}", similarity, str(s.fallback_decisions),
                                 f"{s.duration_s:.2f}s"), key=str(r))
        self.query_one("#games-table", DataTable).add_columns(
            "Game", "Player 1", "Player 2", "Move 1", "Move 2", "Payoff 1", "Payoff 2", "Power 1",
            "Power 2", "Fallback")
        self.query_one("#indicators-table", DataTable).add_columns("Indicator", "Value", "Formula")
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
        self.show("games", lambda: self.fill_games(round, agent), games=[round])

    def fill_games(self, round: int, agent: int | None) -> None:
        table = self.query_one("#games-table", DataTable)
        table.clear()
        labels = round_player_labels(self.manifest.seed, round, self.agents)
        self.set_status("games", self.problems(f"games_r{round}.json"))
        for g in self.games(round):
            if agent not in (ALL, g.player1_id, g.player2_id):
                continue
            fallback = ", ".join(f"p{n}: {reason}" for n, reason in
                                 ((1, g.player1_fallback), (2, g.player2_fallback)) if reason)
            table.add_row(*cells(
                g.game_id, f"{g.player1_id} ({labels.get(g.player1_id, '?')})",
                f"{g.player2_id} ({labels.get(g.player2_id, '?')})", g.player1_action, g.player2_action,
                f"{g.player1_payoff:.2f}", f"{g.player2_payoff:.2f}", f"{g.player1_power_before:.1f}",
                f"{g.player2_power_before:.1f}", fallback,
            ), key=g.game_id)

    def show_history(self) -> None:
        agent, round = self.selected("history-agent"), self.selected("history-round")
        target = self.query_one("#history-text", Static)
        if agent is None or round is None:
            target.update(Text("no agent" if agent is None else "no completed round", style="dim"))
            return
        self.show("history", lambda: target.update(self.history_text(agent, round)),
                  games=[r for r in self.rounds if r <= round], strategies=[round])

    def history_text(self, agent: int, round: int) -> Text:
        """What agent `agent`'s decisions in round `round` were shown, as they saw it."""
        m = self.manifest
        by_round = {r: self.games(r) for r in self.rounds if r <= round}
        lines = agent_lines(by_round, agent, m.seed, self.agents, m.condition)
        history = seen_history(lines, round, m.condition)
        strategy = next((s for s in self.strategies(round) if s.agent_id == agent), None)
        info = next(a for a in m.agents if a.id == agent)
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
        self.show("strategies", lambda: target.update(self.strategies_text(round)), strategies=[round])

    def strategies_text(self, round: int) -> Text:
        text = Text()
        for record in self.strategies(round):
            text.append_text(strategy_text(record))
            text.append("\n\n" + "─" * 60 + "\n\n", style="dim")
        text.append_text(self.problems(f"strategies_r{round}.json"))
        return text

    def show_indicators(self) -> None:
        """From the result file, or (none) from every round file: read off the loop."""
        needed = [] if self.loaded.result is not None else self.rounds
        self.show("indicators", self.fill_indicators, games=needed, strategies=needed)

    def fill_indicators(self) -> None:
        result = self.loaded.result
        if result is not None:
            indicators = result.acausal_indicators
            source = "From experiment_results.json"
        else:
            strategies = [s for r in self.rounds for s in self.strategies(r)]
            games = [g for r in self.rounds for g in self.games(r)]
            indicators = compute_indicators(strategies, games, [self.loaded.summaries[r] for r in self.rounds])
            source = "No result file: computed from the round files that could be read"
        source += f"\n{INDICATORS_NOTE}"
        if result is not None:
            source += f"\n{validity_line(result.validity, result.simulated)}"
        self.query_one("#indicators-source", Static).update(Text(source, style="dim"))
        table = self.query_one("#indicators-table", DataTable)
        table.clear()
        for name in indicators.__struct_fields__:
            table.add_row(*cells(name, indicator_value(name, getattr(indicators, name)),
                                 INDICATOR_DOCS.get(name, "")), key=name)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        """enter on a game: its transcript (acausal_tui/screens/transcript.py)."""
        round = self.selected("games-round")
        if event.data_table.id == "games-table" and round is not None:
            from acausal_tui.screens.transcript import open_game

            open_game(self, self.loaded.directory, round, str(event.cell_key.row_key.value))

    # -- actions --------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_strategy(self) -> None:
        """The History tab's agent's strategy of its round: text, prompt and full reply."""
        agent, round = self.selected("history-agent"), self.selected("history-round")
        if agent is not None and round is not None:
            from acausal_tui.screens.transcript import StrategyScreen

            self.app.push_screen(StrategyScreen(self.loaded.directory, round, agent))

    def action_games(self) -> None:
        """The History tab's agent's games of its round, under the labels it saw them by:
        enter opens one's transcript."""
        agent, round = self.selected("history-agent"), self.selected("history-round")
        if agent is None or round is None:
            return
        m = self.manifest
        games = sorted((g for g in self.games(round) if agent in (g.player1_id, g.player2_id)), key=game_number)
        labels = opponents_in_round(games, agent, m.seed, self.agents, m.condition, round)
        listed = [(g, "you", f"Opponent {label}") if g.player1_id == agent else (g, f"Opponent {label}", "you")
                  for g, label in zip(games, labels, strict=True)]
        if listed:
            from acausal_tui.screens.transcript import GamePicker

            self.app.push_screen(GamePicker(self.loaded.directory, list(reversed(listed)), reveal=False))

    def action_back(self) -> None:
        self.app.pop_screen()
