"""Model text is shown literally: Rich markup and escape sequences are never interpreted."""

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from acausal_tui.app import AcausalApp
from acausal_tui.widgets.text import literal, visible_controls
from engine.providers.base import ChatRequest
from tests.support.fakes import FakeProvider
from tests.tui.conftest import SIZE, screen_text

HOSTILE = "[bold red]x[/] [link=http://x]y[/link] \x1b[31mred\x1b[0m \x9b2J"


def hostile_reply(request: ChatRequest) -> str:
    if request.key.startswith("strategy/"):
        return f"My reasoning: {HOSTILE}\nSTRATEGY: {HOSTILE}"
    return "COOPERATE"


def assert_literal(text: Text) -> None:
    assert isinstance(text, Text)
    assert "[bold red]x[/] [link=http://x]y[/link] \\x1b[31mred\\x1b[0m \\x9b2J" in text.plain
    assert "\x1b" not in text.plain and "\x9b" not in text.plain
    styles = " ".join(str(span.style) for span in text.spans)
    assert "link" not in styles and "red" not in styles


def test_literal_makes_controls_visible_and_keeps_markup_as_text():
    assert visible_controls("a\x1b[31mb\x07\tc\n") == "a\\x1b[31mb\\x07\tc\n"
    text = literal("[bold]not bold[/bold]")
    assert text.plain == "[bold]not bold[/bold]" and not text.spans


async def test_hostile_strategy_text_on_the_run_screen_and_in_the_browser(run_app):
    app: AcausalApp = run_app(FakeProvider(hostile_reply), agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert_literal(app.screen.query_one("#strategy-text", Static).content)
        shown = screen_text(app)
        assert "[bold red]x[/]" in shown and "[link=http://x]y[/link]" in shown and "\\x1b[31mred" in shown

        await pilot.press("b")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter", "4")
        await pilot.pause()
        assert_literal(app.screen.query_one("#strategies-text", Static).content)
        await pilot.press("3")
        assert_literal(app.screen.query_one("#history-text", Static).content)
    assert Path(app.directory).is_dir()
