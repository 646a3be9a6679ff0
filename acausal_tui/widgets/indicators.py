"""The acausal indicators as a small table with each formula beside its value."""

from rich.text import Text

from acausal_tui.widgets.text import percent
from engine.analysis import INDICATOR_DOCS
from engine.models import AcausalIndicators


def indicator_value(name: str, value: float | int | None) -> str:
    if value is None:
        return "—"
    if name == "rounds_to_convergence":
        return str(value)
    if name in ("strategy_convergence", "cooperation_trend"):
        return f"{value:+.3f}"
    return percent(value)


def indicator_text(indicators: AcausalIndicators, formulas: bool = True) -> Text:
    """One line per indicator: name, value and (optionally) the formula."""
    text = Text()
    for name in indicators.__struct_fields__:
        text.append(f"{name:<30} {indicator_value(name, getattr(indicators, name)):>7}")
        if formulas:
            text.append("  " + INDICATOR_DOCS.get(name, ""), style="dim")
        text.append("\n")
    text.rstrip()
    return text
