"""A line-capped live feed that shows its newest lines. Unlike a scrolling log it has a fixed
size, so a new line costs one repaint of the widget, never a layout pass of the screen; a
line is rendered to segments once, the first time it is on screen."""

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
        self._strips: dict[int, Strip] = {}  # id(line) -> its segments, for lines on screen

    def write(self, lines: Iterable[Text]) -> None:
        self.lines.extend(lines)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.content_size
        index = len(self.lines) - height + y
        style = self.rich_style
        if not 0 <= index < len(self.lines):
            return Strip.blank(width, style)
        line = self.lines[index]
        strip = self._strips.get(id(line))
        if strip is None:
            if len(self._strips) > 4 * max(height, 1):  # forget lines scrolled away
                self._strips.clear()
            console = self.app.console
            base = console.get_style(line.style) if line.style else Style.null()  # not applied by render()
            strip = Strip(Segment.apply_style(line.render(console), base)).apply_style(style)
            self._strips[id(line)] = strip
        return strip.crop_extend(0, width, style)
