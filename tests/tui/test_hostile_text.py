"""Hostile model text in the TUI: bidi overrides and zero-width characters shown as
<U+…>, and a 1 MB reply drawn only up to a cap (the files keep all of it)."""

from rich.text import Text
from textual.widgets import Static

from acausal_tui.app import AcausalApp
from acausal_tui.widgets.text import MAX_RENDER_CHARS, literal
from engine.models import StrategyRecord
from engine.providers.base import ChatRequest
from engine.store import read_json
from tests.support.fakes import FakeProvider
from tests.tui.conftest import SIZE, screen_text

INVISIBLE = "evil\u202etxt.exe \u2066iso\u2069 zero\u200bwidth \ufeffbom"
HUGE = "word " * 200_000  # 1 MB


def reply(text: str):
    def answer(request: ChatRequest) -> str:
        return f"{text}\nSTRATEGY: cooperate first" if request.key.startswith("strategy/") else "COOPERATE"

    return answer


def test_literal_caps_long_text_and_says_how_much_is_left_out():
    shown = literal(HUGE)
    assert isinstance(shown, Text)
    assert shown.plain.startswith(HUGE[:MAX_RENDER_CHARS])
    assert shown.plain.endswith(f"… {len(HUGE) - MAX_RENDER_CHARS:,} more characters (full text in the files)")
    assert literal("short").plain == "short"


def test_literal_shows_bidi_and_zero_width_characters():
    assert literal(INVISIBLE).plain == "evil<U+202E>txt.exe <U+2066>iso<U+2069> zero<U+200B>width <U+FEFF>bom"


async def test_bidi_and_zero_width_characters_are_drawn_visibly(run_app):
    app: AcausalApp = run_app(FakeProvider(reply(INVISIBLE)), agents=2, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = screen_text(app)
        assert "evil<U+202E>txt.exe" in shown
        assert not any(c in shown for c in "\u202e\u2066\u2069\u200b\ufeff")


async def test_a_1_mb_reply_is_drawn_up_to_the_cap(run_app):
    app: AcausalApp = run_app(FakeProvider(reply(HUGE)), agents=2, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        content = app.screen.query_one("#strategy-text", Static).content
        assert isinstance(content, Text)
        assert len(content.plain) < 2 * MAX_RENDER_CHARS
        assert "more characters (full text in the files)" in content.plain
    saved = read_json(app.directory / "rounds" / "strategies_r1.json", list[StrategyRecord])
    assert all(HUGE.strip() in s.full_reasoning for s in saved)


async def test_a_bidi_override_in_a_model_name_is_shown_not_obeyed(run_app):
    """The run screen's header and the browser's title drew config names as given: a
    U+202E in a model id reached the terminal raw and reversed the rest of the line."""
    from acausal_tui.screens.experiment_tabs import overview
    from engine.store import load_experiment

    name = "g[bold]pt\u202eevil[/]"
    app: AcausalApp = run_app(FakeProvider(reply("x")), agents=2, rounds=1, models={"main": name, "sub": "s"})
    async with app.run_test(size=(200, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = screen_text(app)
        assert "g[bold]pt<U+202E>evil[/] (main)" in shown and "\u202e" not in shown
    title = overview(load_experiment(app.directory), 1).plain
    assert "g[bold]pt<U+202E>evil[/] (main)" in title and "\u202e" not in title
