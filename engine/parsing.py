"""Reading model replies: the move a decision reply names (SPEC §5.2) and the strategy a
strategy reply ends with (SPEC §4). Pure functions, no I/O."""

import functools
import json
import re
import unicodedata
from typing import Literal, NamedTuple

from engine.models import Action

ReadRule = Literal["word", "line", "json"]
CUT_OFF = "length"  # the finish_reason of a reply stopped by max_tokens

DECISION_WORDS: dict[str, Action] = {"COOPERATE": "COOPERATE", "DEFECT": "DEFECT"}
_WHOLE_REPLY_WORDS: dict[str, Action] = {**DECISION_WORDS, "C": "COOPERATE", "D": "DEFECT"}
# What a decision line may carry before its word ("Final answer: DEFECT", "I choose COOPERATE").
_LABELS = ("decision", "answer", "final answer", "final decision", "move", "choice", "my decision is", "i choose")
_SEPARATOR = r"(?::|：|-{1,2}|–|—|->|=>|→|⇒)"
_LABELLED = re.compile(
    rf"^(?:(?:{'|'.join(re.escape(label) for label in _LABELS)})\s*{_SEPARATOR}?\s*)?(?P<word>[a-z]+)$",
    re.IGNORECASE,
)
_DECISION_FIELDS = ("decision", "action", "move", "choice")
_FENCED = re.compile(r"^[ \t]*```[^\n`]*\n(.*?)\n[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE)
_EMPHASIS = re.compile(r"[*_`~]")
_LEAD = re.compile(r"^[\s#>]*")  # headers and quote marks
_QUOTES = str.maketrans("", "", "\"'“”‘’«»„")
_TRAILING = ".!,;:。！"
_STRUCK = re.compile(r"~~.*?~~")  # struck-through text is withdrawn, not emphasised
# The other move mentioned in any form ("cooperating", "defection"), and as an alternative
# ("or cooperate", "or maybe defect").
_MENTION = {"COOPERATE": r"co-?operat\w*", "DEFECT": r"defect\w*"}
_OTHER_MOVE = {move: re.compile(rf"\b{stem}", re.IGNORECASE) for move, stem in _MENTION.items()}
_ALTERNATIVE = {
    move: re.compile(rf"\bor\s+(?:(?:maybe|perhaps|possibly|to|i\s+(?:could|might))\s+)*{stem}", re.IGNORECASE)
    for move, stem in _MENTION.items()
}
# Words that revise an answer or doubt it.
_REVISION = re.compile(
    r"\b(?:actually|wait|hold on|hmm+|on second thoughts?|on (?:further )?reflection|reconsider\w*|rethink\w*"
    r"|correction|scratch that|never ?mind|(?:just )?kidding|take (?:it|that) back|chang\w* my (?:mind|answer|decision)"
    r"|switch\w*|instead|i mean|let me revise|maybe|perhaps|probably|possibly|not (?:sure|certain)|unsure"
    r"|uncertain|hard to say|undecided|can'?t decide|torn)\b",
    re.IGNORECASE,
)
# A line with no letters or digits is markdown scaffolding ("---", "```", "**"), not a line.
_HAS_CONTENT = re.compile(r"\w")


class Reading(NamedTuple):
    """The move a decision reply names and the rule that read it; (None, None) = ambiguous."""

    action: Action | None
    rule: ReadRule | None


AMBIGUOUS = Reading(None, None)
_CONTESTED = Reading(None, "line")  # lines that state a move and take it back: no rule may read the reply


@functools.lru_cache(maxsize=1024)  # a pure function of its arguments; most replies repeat
def parse_decision(reply: str, finish_reason: str | None = None) -> Reading:
    """Read a decision reply by the rules of SPEC §5.2, or call it ambiguous.

    After markdown emphasis, headers, quotes and trailing punctuation are stripped
    (case-insensitive), only these readings count:
    - `word`: the whole reply is COOPERATE, DEFECT, C or D;
    - `line`: the first or the last line is only COOPERATE or DEFECT, optionally after a
      label (`Decision:`, `Final answer -`, `I choose` …); two such lines that disagree
      make the reply ambiguous, and so does an answer on the first line that the text
      after it takes back (see `_read_line`);
    - `json`: the reply, or its one fenced code block, is a JSON object whose `decision`,
      `action`, `move` or `choice` field is COOPERATE or DEFECT (fields that disagree are
      ambiguous).
    If two rules read different moves, the reply is ambiguous. Anything else — prose,
    negations, hedges, other languages — is ambiguous: the caller asks again. A reply cut
    off by max_tokens (`finish_reason` "length") counts only under `word`, `json`, or
    `line` on its first line, and only if that line was finished (a newline follows it).
    """
    readings = [_read_word(reply), _read_json(reply), _read_line(reply, finish_reason)]
    if _CONTESTED in readings:
        return AMBIGUOUS
    readings = [r for r in readings if r.action is not None]
    if len({r.action for r in readings}) != 1:
        return AMBIGUOUS
    return readings[0]


def _clean(line: str) -> str:
    """A line without struck-through text, markdown emphasis, leading headers and quote
    marks, quotation marks and trailing punctuation. A question mark or an ellipsis stays:
    "DEFECT?" and "DEFECT..." are not answers."""
    line = _STRUCK.sub("", unicodedata.normalize("NFKC", line))
    line = _LEAD.sub("", _EMPHASIS.sub("", line).translate(_QUOTES)).rstrip()
    return line if line.endswith("..") else line.rstrip(_TRAILING).rstrip()


def _read_word(reply: str) -> Reading:
    lines = [_clean(line) for line in reply.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) != 1:
        return AMBIGUOUS
    action = _WHOLE_REPLY_WORDS.get(lines[0].upper())
    return Reading(action, "word") if action else AMBIGUOUS


def _line_action(line: str) -> Action | None:
    match = _LABELLED.match(_clean(line))
    return DECISION_WORDS.get(match["word"].upper()) if match else None


def _read_line(reply: str, finish_reason: str | None) -> Reading:
    raw = reply.splitlines()
    found = [(i, _line_action(line)) for i, line in enumerate(raw) if _HAS_CONTENT.search(_clean(line))]
    if not found:
        return AMBIGUOUS
    if len({action for _, action in found} - {None}) > 1:
        return _CONTESTED  # two lines state different moves
    (first_index, first), (_, last) = found[0], found[-1]
    if finish_reason == CUT_OFF:  # the last line was never finished; the first must have been
        finished = first_index + 1 < len(raw) or reply.endswith(("\n", "\r"))
        last, first = None, first if finished else None
    if last is not None:
        return Reading(last, "line")
    if first is None:
        return AMBIGUOUS
    # Answered first: the text after the answer may take it back or doubt it. It does when it
    # names the other move as a move (in capitals, as the prompt spells it: "DEFECT\n\nNo:
    # COOPERATE"), offers it as an alternative ("or cooperate"), or mentions it in any form
    # next to a word that revises or doubts ("DEFECT\n\nWait, actually I should cooperate",
    # "…maybe defecting is better"). Prose that only explains ("I will not defect") stays.
    rest = unicodedata.normalize("NFKC", "\n".join(raw[first_index + 1 :]))
    other = "DEFECT" if first == "COOPERATE" else "COOPERATE"
    if (
        re.search(rf"\b{other}\b", rest)
        or _ALTERNATIVE[other].search(rest)
        or (_OTHER_MOVE[other].search(rest) and _REVISION.search(rest))
    ):
        return _CONTESTED
    return Reading(first, "line")


def _read_json(reply: str) -> Reading:
    text = reply.strip()
    if not text.startswith("{"):
        blocks = _FENCED.findall(reply)
        if len(blocks) != 1:
            return AMBIGUOUS
        text = blocks[0].strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the interpreter's limit
        return AMBIGUOUS
    if not isinstance(data, dict):
        return AMBIGUOUS
    named = {key.lower(): value for key, value in data.items()}
    values = [named[field] for field in _DECISION_FIELDS if field in named]
    actions = {DECISION_WORDS.get(_clean(v).upper()) if isinstance(v, str) else None for v in values}
    if len(actions) != 1 or None in actions:
        return AMBIGUOUS
    return Reading(actions.pop(), "json")


# -- strategies ---------------------------------------------------------------------------

STRATEGY_WORDS = 100  # past this a strategy is flagged over_limit
STRATEGY_MAX_WORDS = 200  # and past this it is cut, flagged truncated
# A line that starts the strategy: indentation, markdown, a bullet or a number, optionally
# "Final", the word, a colon (or full-width colon), e.g. "STRATEGY:", "**Strategy**:",
# "## Final strategy:", "- STRATEGY:", "2. STRATEGY:", "> strategy：".
_STRATEGY_MARKER = re.compile(
    r"^[ \t>#*_`]*(?:(?:[-+•*]|\d{1,3}[.)])[ \t]+)?[ \t*_`]*(?:final[ \t]+)?strategy[ \t*_`]*[:：][*_`]*",
    re.IGNORECASE | re.MULTILINE,
)


def extract_strategy(reply: str, finish_reason: str | None = None) -> tuple[str | None, list[str]]:
    """The strategy a strategy reply ends with, and its flags (SPEC §4).

    The text after the last marker line (see `_STRATEGY_MARKER`) to the end of the reply,
    whitespace normalised to single spaces, kept whole up to 200 words. Flags:
    `over_limit` past 100 words; `truncated` when cut at 200 words, or when the reply was
    cut off by max_tokens after the marker; `multiple_markers` when more than one marker
    line; `marker_missing` when there is no marker (or nothing after the last one): the
    text is then the last 100 words of the reply, where the rule usually is.
    A reply cut off by max_tokens without a marker, or with no words at all, is a failed
    strategy call: text None.
    """
    markers = list(_STRATEGY_MARKER.finditer(reply))
    words = reply[markers[-1].end() :].split() if markers else []
    flags = ["multiple_markers"] if len(markers) > 1 else []
    if not words:
        words = reply.split()
        if finish_reason == CUT_OFF or not words:
            return None, flags + ["marker_missing"]
        return " ".join(words[-STRATEGY_WORDS:]), flags + ["marker_missing"]
    cut = []
    if len(words) > STRATEGY_WORDS:
        cut.append("over_limit")
    if len(words) > STRATEGY_MAX_WORDS or finish_reason == CUT_OFF:
        cut.append("truncated")
    return " ".join(words[:STRATEGY_MAX_WORDS]), cut + flags
