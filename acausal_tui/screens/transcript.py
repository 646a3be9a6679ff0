"""One game's transcript from calls.jsonl: for each player the strategy it played under
(its prompt and full reply) and every decision turn (prompt, reply, finish_reason, parse
rule, tokens, cost, latency, fallback reason). Model text is shown literally; `c` copies
the focused block; older call logs without messages say what is missing."""

from pathlib import Path

import anyio
import msgspec
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from acausal_tui.widgets.footer import Footer
from acausal_tui.widgets.text import literal, money
from engine.models import CallRecord, GameResult
from engine.store import read_json
from engine.transcripts import PlayerCalls, game_calls

NOT_RECORDED = "not recorded (this calls.jsonl was written before the transcript was logged)"


class Block(Static, can_focus=True):
    """One text of the transcript (a prompt, a reply): focusable, so `c` copies it."""

    def __init__(self, text: Text, copy: str | None = None, classes: str = "") -> None:
        super().__init__(text, markup=False, classes=classes)
        self.copy_text = copy if copy is not None else text.plain
        self.can_focus = copy is not None


class TranscriptScreen(Screen):
    # Its CSS (and its Blocks'): transcript.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [
        Binding("escape", "back", "Back", id="back", tooltip="back"),
        Binding("c", "copy", "Copy text", id="copy", tooltip="copy the focused text (prompt or reply)"),
        Binding("tab", "app.focus_next", "Next text", show=False, tooltip="focus the next text"),
    ]

    def __init__(self, directory: Path, game: GameResult, labels: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.directory = directory
        self.game = game
        self.labels = labels
        self.players: list[PlayerCalls] = []
        self.problems: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(self.title_text(), id="transcript-title")
        yield VerticalScroll(Static(Text("loading…", style="dim")), id="transcript")
        yield Footer()

    def title_text(self) -> Text:
        g = self.game
        text = Text(f"{self.directory.name} · game {g.game_id} (round {g.round})", style="bold")
        names = [f"agent {g.player1_id}", f"agent {g.player2_id}"]
        if self.labels:
            names = [f"{name} ({label})" for name, label in zip(names, self.labels, strict=True)]
        text.append(
            f"\n{names[0]} {g.player1_action} · {g.player2_action} {names[1]}  payoffs "
            f"{g.player1_payoff:.2f} / {g.player2_payoff:.2f}"
        )
        text.append("\ntab: next text · c: copy it · model text is shown exactly as received", style="dim")
        return text

    def on_mount(self) -> None:
        self.run_worker(self.load(), group="transcript", exclusive=True, exit_on_error=False)

    async def load(self) -> None:
        self.players, self.problems = await anyio.to_thread.run_sync(game_calls, self.directory, self.game)
        scroll = self.query_one("#transcript", VerticalScroll)
        await scroll.remove_children()
        await scroll.mount_all(self.blocks())
        focusable = scroll.query(Block).filter(lambda b: b.can_focus)
        if focusable:
            focusable.first().focus()

    def blocks(self) -> list[Block]:
        out: list[Block] = [Block(literal(p, style="red"), classes="meta") for p in self.problems]
        g = self.game
        for n, player in enumerate(self.players, start=1):
            action = g.player1_action if n == 1 else g.player2_action
            rule = g.player1_parse_rule if n == 1 else g.player2_parse_rule
            source = g.player1_strategy_source if n == 1 else g.player2_strategy_source
            fallback = g.player1_fallback if n == 1 else g.player2_fallback
            head = Text(f"Player {n}: agent {player.agent} → {action}")
            if rule is not None:
                head.append(f" · parse rule {rule}")
            if source is not None:
                head.append(f" · strategy {source}")
            out.append(Block(head, classes="heading"))
            if fallback:
                out.append(Block(Text("fallback: ", style="bold yellow") + literal(fallback), classes="meta"))
            out += strategy_blocks(player)
            if not player.decisions:
                kind = (
                    "scripted agent: no model call"
                    if rule == "scripted" or (player.strategy and player.strategy.kind == "scripted")
                    else "no decision call found"
                )
                out.append(Block(Text(kind, style="dim"), classes="meta"))
            for turn, call in enumerate(player.decisions):
                out += call_blocks(call, f"Decision turn t{turn}" + (" (follow-up)" if turn else ""))
        return out

    def action_copy(self) -> None:
        focused = self.focused
        if isinstance(focused, Block):
            self.app.copy_to_clipboard(focused.copy_text)
            self.notify(f"copied {len(focused.copy_text)} characters", timeout=3)

    def action_back(self) -> None:
        self.app.pop_screen()


def strategy_blocks(player: PlayerCalls) -> list[Block]:
    """The strategy a player played under: its text and flags, then its call."""
    record, call = player.strategy, player.strategy_call
    out: list[Block] = []
    if record is not None:
        meta = Text(
            f"Strategy (round {record.round}, {record.kind}" + (f", {record.model}" if record.model else "") + ")",
            style="bold",
        )
        if record.flags:
            meta.append(f" · flags {', '.join(record.flags)}", style="yellow")
        out.append(Block(meta, classes="meta"))
        out.append(Block(literal(record.strategy_text), copy=record.strategy_text))
    if call is not None:
        out += call_blocks(call, "Strategy call")
    elif record is not None and record.kind == "llm":
        out.append(Block(Text("no strategy call found in calls.jsonl", style="dim"), classes="meta"))
    return out


def call_blocks(call: CallRecord, title: str) -> list[Block]:
    """A call's figures, the messages sent (each a block) and the reply (a block)."""
    meta = Text(f"{title} · {call.key} · {call.model}", style="bold")
    finish = call.finish_reason or ("not recorded" if call.messages is None else "—")
    meta.append(
        f"\nfinish_reason {finish} · tokens {call.usage.prompt_tokens} in / {call.usage.completion_tokens} out"
        f" · cost {money(call.cost, call.cost_is_estimate)} · latency {call.latency_s:.2f}s"
        f" · attempts {call.attempts}"
    )
    out = [Block(meta, classes="meta")]
    if call.error:
        out.append(Block(Text("error: ", style="bold red") + literal(call.error), classes="meta"))
    if call.messages is None:
        out.append(Block(Text(f"prompt {NOT_RECORDED}", style="dim"), classes="meta"))
    for message in call.messages or []:
        out.append(Block(Text(f"{message.role}:", style="bold cyan"), classes="meta"))
        out.append(Block(literal(message.content), copy=message.content))
    out.append(Block(Text("reply:", style="bold green"), classes="meta"))
    if call.reply is None:
        out.append(Block(Text("no reply (the call failed)", style="dim"), classes="meta"))
    else:
        out.append(Block(literal(call.reply), copy=call.reply))
    return out


def open_game(screen: Screen, directory: Path, round: int, game_id: str) -> None:
    """Read the round's games off the event loop, then push the game's transcript."""

    async def load() -> None:
        try:
            games = await anyio.to_thread.run_sync(
                read_json, directory / "rounds" / f"games_r{round}.json", list[GameResult]
            )
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            screen.notify(str(exc), title=f"games_r{round}.json could not be read", severity="error", markup=False)
            return
        game = next((g for g in games if g.game_id == game_id), None)
        if game is None:
            screen.notify(f"game {game_id} is not in games_r{round}.json", severity="error", markup=False)
            return
        screen.app.push_screen(TranscriptScreen(directory, game))

    screen.run_worker(load, group="transcript", exclusive=True, exit_on_error=False)


class GamePicker(ModalScreen[None]):
    """The live feed's recent games, newest first: enter opens one's transcript."""

    # Its CSS: transcript.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [Binding("escape", "dismiss", "Close", id="close")]

    def __init__(self, directory: Path, games: list[tuple[GameResult, str, str]], reveal: bool) -> None:
        """`games`: (game, label1, label2) as the feed shows them, oldest first."""
        super().__init__()
        self.directory = directory
        self.games = list(reversed(games))
        self.reveal = reveal

    def compose(self) -> ComposeResult:
        options = []
        for game, label1, label2 in self.games:
            if self.reveal:
                label1, label2 = f"{label1} #{game.player1_id}", f"{label2} #{game.player2_id}"
            options.append(
                Option(
                    Text(
                        f"{game.game_id:<8} {label1:>16} {game.player1_action[0]} · {game.player2_action[0]} {label2}"
                    ),
                    id=game.game_id,
                )
            )
        picker = OptionList(*options, id="game-picker")
        picker.border_title = "Games: enter opens the transcript"
        yield picker

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        game, label1, label2 = self.games[event.option_index]
        self.app.pop_screen()
        self.app.push_screen(TranscriptScreen(self.directory, game, (label1, label2)))


class ReportScreen(ModalScreen[None]):
    """A long plain-text report (e.g. an audit), shown literally and scrollable; c copies it."""

    # Its CSS: transcript.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="close", tooltip="close"),
        Binding("c", "copy", "Copy", id="copy", tooltip="copy the whole report"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll(Static(literal(self.text), markup=False, id="report-text"))
        scroll.border_title = self.title_text
        yield scroll

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"copied {len(self.text)} characters", timeout=3)


class StrategyScreen(TranscriptScreen):
    """One agent's strategy of one round: its text, prompt and full reply (from the
    experiment's History tab, key s)."""

    def __init__(self, directory: Path, round: int, agent: int) -> None:
        # A game no round has (g0) with the agent as both players: game_calls then finds
        # the agent's strategy record and call, and no decision.
        game = GameResult(
            game_id=f"r{round}_g0",
            round=round,
            player1_id=agent,
            player2_id=agent,
            player1_action="COOPERATE",
            player2_action="COOPERATE",
            player1_payoff=0,
            player2_payoff=0,
            player1_power_before=0,
            player2_power_before=0,
        )
        super().__init__(directory, game)
        self.round, self.agent = round, agent

    def title_text(self) -> Text:
        text = Text(f"{self.directory.name} · agent {self.agent}'s strategy, round {self.round}", style="bold")
        text.append("\ntab: next text · c: copy it · model text is shown exactly as received", style="dim")
        return text

    def blocks(self) -> list[Block]:
        out: list[Block] = [Block(literal(p, style="red"), classes="meta") for p in self.problems]
        player = self.players[0]
        if player.strategy is None and player.strategy_call is None:
            return [*out, Block(Text("no strategy recorded for this agent and round", style="dim"), classes="meta")]
        return out + strategy_blocks(player)
