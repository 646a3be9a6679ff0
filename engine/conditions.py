"""Conditions: named presets of prompt and protocol switches (SPEC §7)."""

import re
from collections.abc import Iterable
from typing import Literal

import msgspec

from engine.errors import ConfigError

FALLBACK_STRATEGY = "Cooperate with an opponent the first time you meet it; after that, copy that opponent's last move."


class Condition(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    identity: bool  # the identity statement is in the strategy prompt
    history: str = "full"  # full | none | last:K  (what a decision sees)
    labels: Literal["stable", "shuffled"] = "stable"  # shuffled: fresh permutation each round
    on_unparseable: Literal["random", "cooperate", "defect"] = "random"
    show_power: bool = True  # power figures in the strategy prompt (own power, levels, ratios)
    # shuffled: "DEFECT/COOPERATE" in half the decision prompts (seeded per decision)
    option_order: Literal["fixed", "shuffled"] = "fixed"
    # round 1's strategy for an agent whose strategy call failed (later rounds carry over)
    fallback_strategy: str = FALLBACK_STRATEGY


PRESETS: dict[str, Condition] = {
    "baseline": Condition(name="baseline", identity=False),
    "identity": Condition(name="identity", identity=True),
}


def history_window(history: str) -> int | None:
    """Rounds of history a decision sees: None = all, 0 = none, K = the last K rounds."""
    if history == "full":
        return None
    if history == "none":
        return 0
    match = re.fullmatch(r"last:(\d+)", history)
    if match and int(match.group(1)) >= 1:
        return int(match.group(1))
    raise ConfigError(f"switches.history: {history!r} is not full, none or last:K with K >= 1")


def resolve_condition(name: str, switches: msgspec.Struct) -> Condition:
    """The preset `name` with every switch that is set (not None) in `switches` (the
    config's `Switches`) put over it; ConfigError when either is unknown or malformed."""
    if name not in PRESETS:
        raise ConfigError(f"condition: unknown condition {name!r} (expected one of {', '.join(PRESETS)})")
    overrides = {f: v for f in switches.__struct_fields__ if (v := getattr(switches, f)) is not None}
    condition = msgspec.structs.replace(PRESETS[name], **overrides)
    history_window(condition.history)
    return condition


def set_switches(switches: msgspec.Struct, conditions: Iterable[Condition] = ()) -> str:
    """The switches set, in the form `--conditions` takes them ("history=last:1+labels=shuffled"),
    or "" when none is: a sweep's base config applies them to every condition, whose label
    alone does not say so. With the sweep's resolved `conditions`, only the switches every
    one of them kept (a label's own `+history=full` overrides the base for that condition)."""
    words = {True: "on", False: "off"}
    resolved = list(conditions)
    return "+".join(
        f"{name}={words.get(value, value) if isinstance(value, bool) else value}"
        for name in switches.__struct_fields__
        if (value := getattr(switches, name)) is not None
        and all(getattr(condition, name, value) == value for condition in resolved)
    )
