"""Cooperation per round as a small bar chart on a fixed 0-100% scale."""

from rich.text import Text
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"


def bar_rows(values: list[float | None], height: int, width: int) -> list[str]:
    """Rows of block characters, top row first; each value (0..1) is one column, None
    (a round without a counted move) an empty one."""
    levels = [0 if v is None else round(max(0.0, min(1.0, v)) * height * 8) for v in values]
    rows = []
    for row in range(height - 1, -1, -1):
        cells = [BLOCKS[max(0, min(8, level - row * 8))] * width for level in levels]
        rows.append(" ".join(cells))
    return rows


class CoopChart(Widget):
    """One bar per round; the percentages under the bars."""

    DEFAULT_CSS = "CoopChart { height: 7; }"

    def __init__(self, title: str = "Cooperation per round", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.border_title = title
        self.rates: list[float | None] = []

    def set_rates(self, rates: list[float | None]) -> None:
        """Cooperation rates of rounds 1, 2, …"""
        if rates != self.rates:
            self.rates = list(rates)
            self.set_title()
            self.refresh()

    def on_resize(self) -> None:
        self.set_title()

    def shown(self) -> tuple[int, list[float]]:
        """The most recent rounds that fit (4 columns per round): the first's number, the rates."""
        shown = self.rates[-max(1, (self.size.width + 1) // 4) :]
        return len(self.rates) - len(shown) + 1, shown

    def set_title(self) -> None:
        """Rounds cut off on the left are never dropped silently: the title says which show."""
        first, _ = self.shown()
        total = len(self.rates)
        title = self.title if first == 1 else f"Cooperation, rounds {first}–{total} of {total}"
        if self.border_title != title:
            self.border_title = title

    def render(self) -> Text:
        height = max(1, self.size.height - 2)
        if not self.rates:
            return Text("no round finished yet", style="dim")
        first, shown = self.shown()
        text = Text()
        for row in bar_rows(shown, height, 3):
            text.append(row + "\n", style="green")
        text.append(" ".join("n/a" if rate is None else f"{round(100 * rate):>3}" for rate in shown) + "\n")
        text.append(" ".join(f"r{n:<2}" for n in range(first, first + len(shown))), style="dim")
        return text
