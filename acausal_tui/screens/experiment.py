"""One experiment: its rounds, the games of a round (filterable by agent), one agent's
history exactly as it saw it, the strategies per round with full reasoning, and the
acausal indicators. Files that cannot be read, or that decode but make no sense, are
reported in place (experiment_files.py). Round files are read off the event loop, in a
worker thread; a view shows "loading…" until its files are in."""

from collections.abc import Callable

import anyio
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Select, Static, TabbedContent, TabPane

from acausal_tui.screens import experiment_tabs as tabs
from acausal_tui.screens.experiment_files import RoundFiles
from acausal_tui.screens.transcript import GamePicker, StrategyScreen, open_game
from acausal_tui.widgets.footer import Footer
from acausal_tui.widgets.text import literal
from engine.calllog import logged_spend
from engine.store import LoadedExperiment

TABS = ("rounds", "games", "history", "strategies", "indicators")
LOADING = Text("loading…", style="dim")


class ExperimentScreen(Screen):
    # Its CSS: experiment.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [
        Binding("escape", "back", "Back", id="back", tooltip="back to the browser"),
        *(
            Binding(str(n), f"tab('{tab}')", tab.capitalize(), id=f"tab_{tab}", tooltip=f"the {tab} tab")
            for n, tab in enumerate(TABS, start=1)
        ),
        Binding(
            "s", "strategy", "Strategy call", id="strategy", tooltip="History tab: the agent's strategy call that round"
        ),
        Binding("g", "games", "Its games", id="games", tooltip="History tab: the round's games (enter opens one)"),
    ]

    def __init__(self, loaded: LoadedExperiment) -> None:
        super().__init__()
        assert loaded.manifest is not None
        self.loaded = loaded
        self.manifest = loaded.manifest
        self.rounds = sorted(loaded.summaries)
        self.files = RoundFiles(loaded, len(self.manifest.agents))

    async def show_spend(self) -> None:
        spent = await anyio.to_thread.run_sync(logged_spend, self.loaded.directory)
        if spent is not None:
            self.query_one("#experiment-title", Static).update(tabs.overview(self.loaded, len(self.rounds), spent))

    def show(
        self, view: str, fill: Callable[[], None], games: list[int] | None = None, strategies: list[int] | None = None
    ) -> None:
        """Read the round files `fill` needs off the event loop, then `fill` the view (at
        once when they were read before). A newer request for the same view replaces one
        still loading. Whatever `fill` raises is shown, never crashes the app."""
        missing_games, missing_strategies = self.files.unread(games or [], strategies or [])

        async def load() -> None:
            try:
                await anyio.to_thread.run_sync(self.files.read, missing_games, missing_strategies)
            except Exception as exc:  # read() records what it expects; anything else shows here
                self.set_status(view, literal(f"could not read: {type(exc).__name__}: {exc}", style="bold red"))
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
            self.set_status(
                view, literal(f"this view could not be shown: {type(exc).__name__}: {exc}", style="bold red")
            )

    def show_loading(self, view: str) -> None:
        """Not `loading`: that name is Textual's Widget.loading (a screen always "loading"
        blocks scrolling and shows a wait cursor)."""
        self.set_status(view, LOADING)

    def set_status(self, view: str, text: Text) -> None:
        """The line above a view: loading, or what could not be read or shown."""
        status = self.query_one(f"#{view}-problem", Static)
        status.update(text)
        status.display = bool(text)

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        last = self.rounds[-1] if self.rounds else None
        round = last if last is not None else Select.NULL
        round_options = [(f"Round {r}", r) for r in self.rounds]
        agent_options = [(literal(f"Agent {a.id} ({a.kind})"), a.id) for a in self.manifest.agents]
        agent = agent_options[0][1] if agent_options else Select.NULL
        yield Static(tabs.overview(self.loaded, len(self.rounds)), id="experiment-title")
        with TabbedContent(id="tabs"):
            with TabPane("Rounds", id="rounds"):
                yield DataTable(cursor_type="row", zebra_stripes=True, id="rounds-table")
            with TabPane("Games", id="games"):
                with Horizontal(classes="filters"):
                    yield Select(round_options, value=round, allow_blank=last is None, id="games-round")
                    yield Select(
                        [("All agents", tabs.ALL), *agent_options], value=tabs.ALL, allow_blank=False, id="games-agent"
                    )
                yield Static(id="games-problem", classes="view-status")
                yield DataTable(zebra_stripes=True, id="games-table")
            with TabPane("History", id="history"):
                with Horizontal(classes="filters"):
                    yield Select(agent_options, value=agent, allow_blank=not agent_options, id="history-agent")
                    yield Select(round_options, value=round, allow_blank=last is None, id="history-round")
                yield Static(id="history-problem", classes="view-status")
                with VerticalScroll():
                    yield Static(id="history-text")
            with TabPane("Strategies", id="strategies"):
                with Horizontal(classes="filters"):
                    yield Select(round_options, value=round, allow_blank=last is None, id="strategies-round")
                yield Static(id="strategies-problem", classes="view-status")
                with VerticalScroll():
                    yield Static(id="strategies-text")
            with TabPane("Indicators", id="indicators"):
                yield Static(id="indicators-source")
                yield Static(id="indicators-problem", classes="view-status")
                yield DataTable(cursor_type="row", id="indicators-table")
        yield Footer()

    def on_mount(self) -> None:
        if self.loaded.current_result is None:  # no result (or a stale one): what the call log says was spent
            self.run_worker(self.show_spend, group="spend", exit_on_error=False)
        table = self.query_one("#rounds-table", DataTable)
        table.add_columns(*tabs.ROUND_COLUMNS)
        for r in self.rounds:
            table.add_row(*tabs.round_row(r, self.loaded.summaries[r]), key=str(r))
        self.query_one("#games-table", DataTable).add_columns(*tabs.GAME_COLUMNS)
        self.query_one("#indicators-table", DataTable).add_columns(*tabs.INDICATOR_COLUMNS)
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
        self.query_one("#games-table", DataTable).clear()
        round, agent = self.selected("games-round"), self.selected("games-agent")
        if round is not None and agent is not None:
            self.show("games", lambda: self.fill_games(round, agent), games=[round])

    def fill_games(self, round: int, agent: int) -> None:
        table = self.query_one("#games-table", DataTable)
        table.clear()
        self.set_status("games", self.files.problems(f"games_r{round}.json"))
        for key, row in tabs.game_rows(self.files, self.manifest.seed, round, agent):
            table.add_row(*row, key=key)

    def show_history(self) -> None:
        agent, round = self.selected("history-agent"), self.selected("history-round")
        target = self.query_one("#history-text", Static)
        if agent is None or round is None:
            target.update(Text("no agent" if agent is None else "no completed round", style="dim"))
            return
        self.show(
            "history",
            lambda: target.update(tabs.history_text(self.files, self.rounds, agent, round)),
            games=[r for r in self.rounds if r <= round],
            strategies=[round],
        )

    def show_strategies(self) -> None:
        round = self.selected("strategies-round")
        target = self.query_one("#strategies-text", Static)
        if round is None:
            target.update(Text("no completed round", style="dim"))
            return
        self.show("strategies", lambda: target.update(tabs.strategies_text(self.files, round)), strategies=[round])

    def show_indicators(self) -> None:
        """From the result file, or (none) from every round file: read off the loop."""
        needed = [] if self.loaded.current_result is not None else self.rounds
        self.show("indicators", self.fill_indicators, games=needed, strategies=needed)

    def fill_indicators(self) -> None:
        source, rows = tabs.indicators(self.files, self.rounds)
        self.query_one("#indicators-source", Static).update(source)
        table = self.query_one("#indicators-table", DataTable)
        table.clear()
        for key, row in rows:
            table.add_row(*row, key=key)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        """enter on a game: its transcript (acausal_tui/screens/transcript.py)."""
        round = self.selected("games-round")
        if event.data_table.id == "games-table" and round is not None:
            open_game(self, self.loaded.directory, round, str(event.cell_key.row_key.value))

    # -- actions --------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        """A dropdown left focused in the old tab is unfocused first: Textual would move its
        focus on to the next dropdown there, which takes the tabs back to its own tab."""
        if isinstance(self.focused, Select):
            self.set_focus(None)
        self.query_one(TabbedContent).active = tab

    def action_strategy(self) -> None:
        """The History tab's agent's strategy of its round: text, prompt and full reply."""
        agent, round = self.selected("history-agent"), self.selected("history-round")
        if agent is not None and round is not None:
            self.app.push_screen(StrategyScreen(self.loaded.directory, round, agent))

    def action_games(self) -> None:
        """The History tab's agent's games of its round, under the labels it saw them by:
        enter opens one's transcript."""
        agent, round = self.selected("history-agent"), self.selected("history-round")
        if agent is None or round is None:
            return
        listed = tabs.agent_games(self.files, agent, round)
        if listed:
            self.app.push_screen(GamePicker(self.loaded.directory, list(reversed(listed)), reveal=False))

    def action_back(self) -> None:
        self.app.pop_screen()
