"""Model text shown literally: never parsed as Rich markup, escape sequences made visible."""

import math

from rich.text import Text

from engine.textsafe import visible

# Longer texts are cut when drawn (a 1 MB reply made every key take seconds; a reply cut at
# max_tokens 1000 is ~4,000 characters, so real replies are drawn whole); the files and
# calls.jsonl keep every character.
MAX_RENDER_CHARS = 10_000


def visible_controls(text: str) -> str:
    """Control characters in their escape spelling (ESC[31m -> \\x1b[31m), bidi overrides
    and zero-width characters as <U+202E>."""
    return visible(text)


def literal(text: str, style: str = "", limit: int = MAX_RENDER_CHARS) -> Text:
    """A Text that shows `text` exactly as written: `[bold]` stays `[bold]`. Past `limit`
    characters the rest is replaced by one line saying how much was left out."""
    if len(text) <= limit:
        return Text(visible(text), style=style)
    shown = Text(visible(text[:limit]), style=style)
    shown.append(f"\n… {len(text) - limit:,} more characters (full text in the files)", style="dim italic")
    return shown


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


def money_at_least(usd: float, estimate: bool = False) -> str:
    """A lower bound in money's format, rounded down: "≥$0.0072" for $0.0072553 (a sum too
    large to round, from a damaged log, as it is)."""
    if usd >= 1e12:
        return f"≥{'~' if estimate else ''}${usd:.3g}"
    return f"≥{money(math.floor(usd * 1e4 + 1e-6) / 1e4, estimate)}"
