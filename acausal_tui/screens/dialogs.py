"""Modal dialogs: a yes/no confirmation and the key help."""

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

KEYS = [
    (
        "Run screen",
        [
            ("p", "pause / resume: no new call starts; calls in flight finish"),
            ("a", "abort (asks first): cancel calls in flight, save partial results"),
            ("b", "browse past experiments (the run goes on)"),
            ("[ ]", "previous / next agent in the strategy pane"),
        ],
    ),
    (
        "Sweep screen",
        [
            ("p", "pause / resume every experiment of the sweep"),
            ("a", "abort every experiment (asks first), save partial results"),
            ("c", "the full comparison view, once the sweep is over"),
        ],
    ),
    (
        "Browser",
        [
            ("enter", "open the highlighted experiment"),
            ("r R", "reload the list · resume the highlighted experiment"),
            ("1…5", "an experiment's rounds, games, history, strategies, indicators"),
            ("esc", "back"),
        ],
    ),
    (
        "Everywhere",
        [
            ("q", "quit (asks first while a run or sweep is going)"),
            ("?", "this help (esc closes it)"),
        ],
    ),
]


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

    def compose(self) -> ComposeResult:
        """At most 72 cells wide and 20 lines: it fits an 80x24 terminal whole."""
        text = Text()
        for where, keys in KEYS:
            text.append(f"{where}\n", style="bold")
            for key, what in keys:
                text.append(f"{key:>6}  ", style="bold cyan")
                text.append(f"{what}\n")
        text.append("Model text is shown literally: markup and escape sequences are never interpreted.", style="dim")
        with VerticalScroll(classes="dialog help"):
            yield Static(text)
