"""A line-capped live feed that shows its newest lines, oldest at the top. Unlike a scrolling
log it has a fixed size, so a new line costs one repaint of the widget, never a layout pass of
the screen; a line is rendered to segments once, the first time it is on screen, and cached
under its sequence number (never under `id()`, which Python reuses once a line is dropped)."""

from collections import deque
from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget


class Tail(Widget):
    DEFAULT_CSS = "Tail { height: 1fr; }"

    def __init__(self, max_lines: int, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.lines: deque[Text] = deque(maxlen=max_lines)
        self.written = 0  # lines ever written; line i of `lines` has number written - len + i
        self._strips: dict[int, Strip] = {}  # line number -> its segments, for lines on screen

    def write(self, lines: Iterable[Text]) -> None:
        for line in lines:
            self.lines.append(line)
            self.written += 1
        first = self.written - len(self.lines)
        for number in [n for n in self._strips if n < first]:  # scrolled out of the buffer
            del self._strips[number]
        self.refresh()

    def visible(self) -> list[Text]:
        """The lines on screen, top to bottom: the newest that fit."""
        height = self.content_size.height
        return list(self.lines)[-height:] if height else []

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        index = len(self.lines) - height + y
        style = self.rich_style
        if not 0 <= index < len(self.lines):
            return Strip.blank(width, style)
        number = self.written - len(self.lines) + index
        strip = self._strips.get(number)
        if strip is None:
            line = self.lines[index]
            console = self.app.console
            base = console.get_style(line.style) if line.style else Style.null()  # not applied by render()
            strip = Strip(Segment.apply_style(line.render(console), base)).apply_style(style)
            self._strips[number] = strip
        return strip.crop_extend(0, width, style)
