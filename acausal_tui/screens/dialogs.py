"""Modal dialogs: a yes/no confirmation and the key help."""

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

KEYS = [
    ("Run screen", "p", "pause / resume: no new model call starts; calls in flight finish"),
    ("Run screen", "a", "abort (asks first): cancel in-flight calls, save partial results"),
    ("Run screen", "b", "browse past experiments (the run goes on)"),
    ("Run screen", "[  ]", "previous / next agent in the strategy pane"),
    ("Sweep screen", "p", "pause / resume every experiment of the sweep"),
    ("Sweep screen", "a", "abort every experiment (asks first), save partial results"),
    ("Sweep screen", "c", "the full comparison view, once the sweep is over"),
    ("Browser", "enter", "open the highlighted experiment"),
    ("Browser", "r", "reload the results directory"),
    ("Browser", "R", "resume the highlighted experiment on a run screen"),
    ("Experiment", "1 … 5", "rounds, games, history, strategies, indicators"),
    ("Browser, experiment", "esc", "back"),
    ("Everywhere", "q", "quit (asks first while a run or sweep is going)"),
    ("Everywhere", "?", "this help"),
]


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

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
        text = Text("Keys\n\n", style="bold")
        for where, key, what in KEYS:
            text.append(f"{key:>6}  ", style="bold cyan")
            text.append(f"{what}  ")
            text.append(f"({where})\n", style="dim")
        text.append("\nModel text is shown literally: markup and escape sequences in a reply "
                    "are never interpreted.\nPress esc to close.", style="dim")
        with Vertical(classes="dialog help"):
            yield Static(text)
