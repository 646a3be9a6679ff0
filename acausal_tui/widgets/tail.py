"""A line-capped live feed that shows its newest items, oldest at the top, drawn through
Textual's Line API: only the rows on screen are made into text (by the feed's `line`
function) and rendered, one strip each, and nothing is kept between paints (at 100 agents
every row changes at every redraw, so a cache would only hold garbage for the collector).
It has a fixed size, so a new line costs one repaint of the widget, never a layout pass of
the screen.

Why not `Log` or `RichLog`: `RichLog` renders every line written into strips it keeps
(60 games a redraw at 100 agents, most never on screen), and `Log` holds plain strings
drawn top-down with a scrollbar; the feed is styled (C green, D red) and bottom-aligned."""

from collections import deque
from collections.abc import Callable, Iterable
from time import monotonic
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget


def as_text(item: Any) -> Text:
    return item if isinstance(item, Text) else Text(str(item))


class Tail(Widget):
    """The last `max_lines` items written, each drawn as `line(item)` when it is on screen;
    `redraw(line)` draws them all again another way. Writes are painted at most once per
    `min_interval` seconds: at 100 agents sixty games arrive between two redraws of the
    screen, faster than anyone reads them. A write held back is painted by the next
    `paint_if_due()` after that, which the owner calls on its own redraw tick, so the paint
    shares the frame the rest of the screen is drawn in rather than costing one of its own."""

    DEFAULT_CSS = "Tail { height: 1fr; }"

    def __init__(
        self,
        max_lines: int,
        line: Callable[[Any], Text] = as_text,
        *,
        min_interval: float = 0.0,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.items: deque[Any] = deque(maxlen=max_lines)
        self.line = line
        self.min_interval = min_interval
        self._painted_at = float("-inf")
        self.paint_pending = False  # written, not painted yet
        self._paint_style: Style | None = None  # the widget's style, looked up once per paint

    def write(self, items: Iterable[Any]) -> None:
        self.items.extend(items)
        self.paint_pending = True
        self.paint_if_due()

    def paint_if_due(self) -> None:
        """Paint what was written unless the last paint is under `min_interval` ago."""
        now = monotonic()
        if self.paint_pending and now - self._painted_at >= self.min_interval:
            self._painted_at, self.paint_pending = now, False
            self.refresh()

    def redraw(self, line: Callable[[Any], Text]) -> None:
        self.line = line
        self.refresh()

    @property
    def lines(self) -> list[Text]:
        """Every item held, as its line."""
        return [self.line(item) for item in self.items]

    def render_lines(self, crop: Region) -> list[Strip]:
        self._paint_style = self.rich_style  # walks every ancestor's styles: once, not per row
        try:
            return super().render_lines(crop)
        finally:
            self._paint_style = None

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        style = self.rich_style if self._paint_style is None else self._paint_style
        index = len(self.items) - height + y
        if not 0 <= index < len(self.items):
            return Strip.blank(width, style)
        line = self.line(self.items[index])
        console = self.app.console
        base = style + console.get_style(line.style) if line.style else style  # Text.render leaves it out
        segments = list(Segment.apply_style(line.render(console), base))
        return Strip(Segment.adjust_line_length(segments, width, style=style), width)
