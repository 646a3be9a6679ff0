"""The footer is rebuilt when the keys it shows change, and only then (acausal_tui/widgets/footer.py)."""

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Button

from acausal_tui.widgets.footer import Footer
from tests.tui.conftest import screen_text, wait_until


class CountingFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self.composed = 0

    def compose(self) -> ComposeResult:
        self.composed += 1
        yield from super().compose()


class KeysApp(App):
    BINDINGS = [
        Binding("p", "pause", "Pause", id="pause"),
        Binding("p", "resume", "Resume", id="resume"),
        Binding("x", "noop", "Extra"),
    ]
    paused: reactive[bool] = reactive(False, bindings=True)

    def compose(self) -> ComposeResult:
        yield Button("one", id="one")
        yield Button("two", id="two")
        yield CountingFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":
            return not self.paused
        if action == "resume":
            return self.paused
        return True

    def action_pause(self) -> None:
        self.paused = True

    def action_resume(self) -> None:
        self.paused = False


async def test_same_keys_no_rebuild_changed_keys_rebuilt_and_drawn():
    app = KeysApp()
    async with app.run_test(size=(80, 10)) as pilot:
        footer = app.query_one(CountingFooter)
        await wait_until(pilot, lambda: "Pause" in screen_text(app))
        app.query_one("#one", Button).focus()
        await pilot.pause(0.1)  # the start-up's own rebuilds done
        built = footer.composed

        for _ in range(3):  # each focus move signals that the bindings may have changed; they did not
            app.query_one("#two", Button).focus()
            await pilot.pause()
            app.query_one("#one", Button).focus()
            await pilot.pause()
        await pilot.pause()
        assert footer.composed == built
        assert "Pause" in screen_text(app)

        app.paused = True  # the keys change: Pause gives way to Resume
        await wait_until(pilot, lambda: "Resume" in screen_text(app))
        assert "Pause" not in screen_text(app).replace("Resume", "")
        assert footer.composed == built + 1

        app.paused = False
        await wait_until(pilot, lambda: "Pause" in screen_text(app))
        assert "Resume" not in screen_text(app)
