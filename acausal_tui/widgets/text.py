"""Model text shown literally: never parsed as Rich markup, escape sequences made visible."""

import re

from rich.text import Text

# C0 controls except tab and newline, DEL, and C1 controls (0x9b is a one-byte CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible_controls(text: str) -> str:
    """Replace control characters with their escape spelling: ESC[31m -> \\x1b[31m."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def literal(text: str, style: str = "") -> Text:
    """A Text that shows `text` exactly as written: `[bold]` stays `[bold]`."""
    return Text(visible_controls(text), style=style)


def cells(*values: str | Text) -> tuple[Text, ...]:
    """DataTable cells shown as written: a plain `str` cell would be parsed as Rich markup
    (`|sim[r+1] - sim[r]|` would lose its brackets, `exp_[reverse]X` would turn reverse)."""
    return tuple(literal(value) if isinstance(value, str) else value for value in values)


def percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{100 * fraction:.1f}%"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def money(usd: float | None, estimate: bool = False) -> str:
    if usd is None:
        return "—"
    return f"{'~' if estimate else ''}${usd:.4f}"
