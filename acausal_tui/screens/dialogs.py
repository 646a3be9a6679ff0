"""Modal dialogs: a yes/no confirmation and the key help."""

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

Rows = list[tuple[str, str]]  # (key as shown, what it does)


def key_rows(
    bindings: list[Binding], key_display: Callable[[Binding], str], extra: Sequence[tuple[str, str]] = ()
) -> Rows:
    """A screen's keys for the help, from its BINDINGS (each one's tooltip, else its footer
    label), then `extra`: keys its widgets or Textual provide. A key listed twice with the
    same text (p for pause and for resume) is one row."""
    rows: Rows = []
    for binding in bindings:
        text = binding.tooltip or binding.description
        if not any(shown == text for _, shown in rows):
            rows.append((key_display(binding), text))
    return rows + list(extra)


class ConfirmScreen(ModalScreen[bool]):
    # Its CSS (and HelpScreen's): dialogs.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No", about_run: bool = False) -> None:
        """`about_run`: a question about the run (or sweep) in progress, withdrawn (answered
        no) when the run ends first."""
        super().__init__()
        self.question, self.yes, self.no, self.about_run = question, yes, no, about_run

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button(f"{self.no} (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", show=False)]

    def __init__(self, sections: list[tuple[str, Rows]]) -> None:
        """`sections`: (where, its key rows), e.g. from key_rows."""
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        """At most 78 cells wide; it scrolls when taller than the terminal."""
        text = Text()
        for where, rows in self.sections:
            text.append(f"{where}\n", style="bold")
            for key, what in rows:
                text.append(f"{key:>8}  ", style="bold cyan")
                text.append(f"{what}\n")
        text.append("Model text is shown literally: markup and escape sequences are never interpreted.", style="dim")
        with VerticalScroll(classes="dialog help"):
            yield Static(text, id="help-text")
