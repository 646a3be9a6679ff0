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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rates: list[float | None] = []

    def set_rates(self, rates: list[float | None]) -> None:
        """Cooperation rates of rounds 1, 2, …"""
        if rates != self.rates:
            self.rates = list(rates)
            self.refresh()

    def render(self) -> Text:
        height = max(1, self.size.height - 2)
        if not self.rates:
            return Text("no round finished yet", style="dim")
        # Keep the most recent rounds that fit: 4 columns per round.
        shown = self.rates[-max(1, (self.size.width + 1) // 4):]
        first = len(self.rates) - len(shown) + 1
        text = Text()
        for row in bar_rows(shown, height, 3):
            text.append(row + "\n", style="green")
        text.append(" ".join("n/a" if rate is None else f"{round(100 * rate):>3}" for rate in shown) + "\n")
        text.append(" ".join(f"r{n:<2}" for n in range(first, first + len(shown))), style="dim")
        return text
