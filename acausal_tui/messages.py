"""The requests more than one screen posts to the app (a screen's own are declared on it)."""

from pathlib import Path

from textual.message import Message


class OpenExperiment(Message):
    """Open the experiment in `directory` on its detail screen (from the browser or a sweep's
    comparison). The app reads it off the event loop and says so when it is unreadable."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
