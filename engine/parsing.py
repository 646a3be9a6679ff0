"""Reading model replies: the decision word of a decision reply (SPEC §5.2) and the
strategy text of a strategy reply (SPEC §5.1). Pure functions, no I/O."""

import re

from engine.models import Action

# Markdown (`*`, `_`, backticks, `#`, `>`) and punctuation become spaces, so "**DEFECT**",
# "cooperate." and "Decision: DEFECT" all reduce to bare words. `_` is listed on its own
# because `\w` counts it as a word character.
_NON_WORD = re.compile(r"[^\w\s]|_")
# Whole words only: "COOPERATES" or "cooperation" are not decisions.
_DECISION_WORD = re.compile(r"\b(?:COOPERATE|DEFECT)\b")
_WHOLE_REPLY: dict[str, Action] = {
    "COOPERATE": "COOPERATE",
    "DEFECT": "DEFECT",
    "C": "COOPERATE",
    "D": "DEFECT",
}

# A line that starts the strategy: optional indentation and markdown, the word, a colon,
# e.g. "STRATEGY:", "**STRATEGY:**", "**Strategy**:", "## Strategy:", "> strategy:".
_STRATEGY_MARKER = re.compile(r"^[ \t>#*_`]*STRATEGY[ \t*_`]*:[*_`]*", re.IGNORECASE | re.MULTILINE)


def parse_decision(reply: str) -> Action | None:
    """The move a decision reply names, or None when it is ambiguous.

    Case-insensitive, after markdown and punctuation are stripped; the first rule that
    matches wins:
    (a) the whole reply is one decision word, or `C` / `D`;
    (b) the last non-empty line contains exactly one of the words COOPERATE / DEFECT
        (distinct words: a line naming both does not match);
    (c) the whole reply contains exactly one of them.
    The rule is literal: negation is not understood, so "I will not defect" is DEFECT.
    """
    text = _NON_WORD.sub(" ", reply).upper()
    whole = _WHOLE_REPLY.get(text.strip())
    if whole is not None:
        return whole
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    return _single_decision_word(lines[-1]) or _single_decision_word(text)


def _single_decision_word(text: str) -> Action | None:
    words = set(_DECISION_WORD.findall(text))
    if words == {"COOPERATE"}:
        return "COOPERATE"
    if words == {"DEFECT"}:
        return "DEFECT"
    return None


def extract_strategy(reply: str, max_words: int = 100) -> tuple[str, list[str]]:
    """The strategy a strategy reply ends with, and its flags.

    The text after the last line beginning `STRATEGY:` (case-insensitive; indentation and
    markdown such as `**STRATEGY:**` or `## Strategy:` tolerated) to the end of the reply,
    cut to its first `max_words` words (flag "truncated"). Without the marker, or with
    nothing after it, the last `max_words` words of the reply (flag "marker_missing"):
    the rule comes at the end, so the end is the best guess. Whitespace is normalised to
    single spaces.
    """
    markers = list(_STRATEGY_MARKER.finditer(reply))
    if markers:
        words = reply[markers[-1].end() :].split()
        if words:
            if len(words) > max_words:
                return " ".join(words[:max_words]), ["truncated"]
            return " ".join(words), []
    words = reply.split()
    return " ".join(words[-max_words:]), ["marker_missing"]
