"""A game's transcript opened from the browser's Games tab: the drawn prompt and reply
texts are calls.jsonl's, model text is shown literally, `c` copies, old call logs say what
is missing."""

import json
import shutil
from pathlib import Path

from textual.widgets import DataTable

from acausal_tui.app import AcausalApp
from acausal_tui.screens.experiment import ExperimentScreen
from acausal_tui.screens.run import RunScreen
from acausal_tui.screens.transcript import Block, GamePicker, StrategyScreen, TranscriptScreen
from engine.providers.base import ChatRequest
from tests.support.fakes import FakeProvider
from tests.tui.conftest import FIXTURE_RESULTS, SIZE, screen_text, wait_until

HOSTILE = "[bold red]x[/] [@click=app.quit]quit[/] \x1b[2J \x1b]52;c;aGVsbG8=\x07"
SHOWN = "[bold red]x[/] [@click=app.quit]quit[/] \\x1b[2J \\x1b]52;c;aGVsbG8=\\x07"


def hostile(request: ChatRequest) -> str:
    if request.key.startswith("strategy/"):
        return f"Reasoning {HOSTILE}\nSTRATEGY: cooperate {HOSTILE}"
    return f"COOPERATE\n{HOSTILE}"


def calls(directory: Path, key: str) -> dict:
    for line in (directory / "calls.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["key"] == key:
            return record
    raise AssertionError(f"{key} not in calls.jsonl")


async def open_transcript(pilot, row: int = 0) -> TranscriptScreen:
    """From the browser's first experiment: Games tab, the row-th game, enter."""
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ExperimentScreen))
    await pilot.press("2")
    await app.workers.wait_for_complete()
    await pilot.pause()
    table = app.screen.query_one("#games-table", DataTable)
    table.focus()
    table.move_cursor(row=row)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, TranscriptScreen))
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.screen


async def test_the_drawn_prompts_and_replies_are_those_of_calls_jsonl(run_app):
    app: AcausalApp = run_app(agents=3, rounds=2)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("b")
        transcript = await open_transcript(pilot)
        directory = Path(app.directory)
        game = transcript.game
        assert game.game_id == "r2_g1"  # the last round is shown first
        copies = [b.copy_text for b in transcript.query(Block) if b.can_focus]
        for n in (1, 2):
            decision = calls(directory, f"decision/r2/g1/p{n}/t0")
            assert decision["messages"], "new runs log the messages sent"
            prompt = decision["messages"][-1]["content"]
            assert prompt in copies and decision["reply"] in copies
            agent = game.player1_id if n == 1 else game.player2_id
            strategy = calls(directory, f"strategy/r2/a{agent}")
            assert strategy["reply"] in copies
            assert strategy["messages"][-1]["content"] in copies
        # what is drawn is that text: the block's rendered content equals the record
        block = next(b for b in transcript.query(Block) if b.copy_text == prompt)
        assert str(block.render()) == prompt
        block.focus()  # long texts scroll: focusing one brings it into view
        await wait_until(pilot, lambda: "Current opponent: Opponent" in screen_text(app))
        assert f"finish_reason {decision['finish_reason']}" in screen_text(app)
        # c copies the focused text
        copied: list[str] = []
        app.copy_to_clipboard = copied.append
        transcript.focus_next()
        await pilot.press("c")
        assert copied and copied[0] == transcript.focused.copy_text


async def test_markup_and_escape_sequences_in_replies_are_shown_literally(run_app):
    app: AcausalApp = run_app(FakeProvider(hostile), agents=2, rounds=1)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.workers.wait_for_complete()
        assert app.screen.is_current  # [@click=app.quit] did not quit
        await pilot.press("b")
        transcript = await open_transcript(pilot)
        rendered = [b.render() for b in transcript.query(Block) if b.can_focus]
        replies = [r for r in rendered if "[@click=app.quit]" in str(r)]
        assert len(replies) >= 4  # two strategies, two decisions
        for text in replies:
            assert SHOWN in str(text) and "\x1b" not in str(text) and "\x07" not in str(text)
            assert not text.spans  # nothing became bold, red or a link
        shown = screen_text(app)
        assert "[bold red]x[/] [@click=app.quit]quit[/] \\x1b[2J" in shown
        await pilot.press("escape")
        assert isinstance(app.screen, ExperimentScreen)


async def test_an_old_call_log_says_what_is_missing(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS / "exp_20250101_090000", results / "exp_20250101_090000")
    log = results / "exp_20250101_090000" / "calls.jsonl"
    old_lines = []  # as written before the transcript was logged: no messages, no finish_reason
    for line in log.read_text().splitlines():
        record = json.loads(line)
        record.pop("messages", None)
        record.pop("finish_reason", None)
        old_lines.append(json.dumps(record, separators=(",", ":")))  # as msgspec writes it
    log.write_text("\n".join(old_lines) + "\n")
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        transcript = await open_transcript(pilot)
        shown = screen_text(app)
        assert "prompt not recorded (this calls.jsonl was written before the transcript was logged)" in shown
        assert "finish_reason not recorded" in shown
        directory = results / "exp_20250101_090000"
        reply = calls(directory, "decision/r3/g1/p1/t0")["reply"]
        assert reply in [b.copy_text for b in transcript.query(Block) if b.can_focus]


async def test_a_game_from_the_live_feed_opens_its_transcript(run_app):
    app: AcausalApp = run_app(agents=3, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, GamePicker))
        newest = app.screen.games[0][0].game_id  # games finish in any order: the last one in
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TranscriptScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        transcript = app.screen
        assert transcript.game.game_id == newest
        assert "Player_1_" in screen_text(app)  # the feed's anonymous labels, not ids
        copies = [b.copy_text for b in transcript.query(Block) if b.can_focus]
        for n in (1, 2):
            decision = calls(Path(app.directory), f"decision/r1/g{newest.split('_g')[1]}/p{n}/t0")
            assert decision["messages"][-1]["content"] in copies and decision["reply"] in copies
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)


async def open_history(pilot) -> None:
    """From the finished run: the browser, the experiment, its History tab (agent 0, the
    last round)."""
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.press("b")
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ExperimentScreen))
    await pilot.press("3")
    await app.workers.wait_for_complete()


async def test_a_strategy_shows_its_prompt_and_full_reply(run_app):
    app: AcausalApp = run_app(agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        await open_history(pilot)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, StrategyScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        call = calls(Path(app.directory), "strategy/r2/a0")
        copies = [b.copy_text for b in app.screen.query(Block) if b.can_focus]
        assert call["messages"][-1]["content"] in copies and call["reply"] in copies
        assert not any(str(b.render()).startswith("Decision turn") for b in app.screen.query(Block))
        assert "agent 0's strategy, round 2" in screen_text(app)


async def test_a_game_from_an_agents_history_opens_its_transcript(run_app):
    """History tab, g: the agent's games of the round under the labels it saw; enter opens
    the first, whose drawn decision reply is the agent's own from calls.jsonl."""
    app: AcausalApp = run_app(agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        await open_history(pilot)
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, GamePicker))
        picker = app.screen
        assert [g.game_id for g, _, _ in picker.games] == ["r2_g1", "r2_g2"]  # agent 0 plays 1 and 2
        assert all("you" in (a, b) for _, a, b in picker.games)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TranscriptScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.game.game_id == "r2_g1"
        reply = calls(Path(app.directory), "decision/r2/g1/p1/t0")["reply"]
        assert reply in [b.copy_text for b in app.screen.query(Block) if b.can_focus]
