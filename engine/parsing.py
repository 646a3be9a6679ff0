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
# A colon, a dash or an arrow: ASCII ("->", "==>") or a Unicode arrow ("→", "⟶", "➜", "➡️"),
# but not one that says "not" (↚ ↛ ↮ ⇍ ⇎ ⇏).
_ARROWS = (
    "\u2190-\u2199\u219c-\u21ad\u21af-\u21cc\u21d0-\u21ff\u2794-\u27bf\u27f0-\u27ff\u2900-\u297f\u2b05-\u2b07\u2b95"
)
_SEPARATOR = rf"(?::|：|-{{1,2}}|–|—|[-=]+>|[{_ARROWS}]\ufe0f?)"
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
# A reasoning model's scratchpad ahead of its answer ("<think>…</think>COOPERATE") is not the reply.
_THINKING = re.compile(r"\A\s*<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
# The other move mentioned in any form ("cooperating", "defection"), and as an alternative
# ("or cooperate", "or maybe defect").
_MENTION = {"COOPERATE": r"co-?operat\w*", "DEFECT": r"defect\w*"}
_OTHER_MOVE = {move: re.compile(rf"\b{stem}", re.IGNORECASE) for move, stem in _MENTION.items()}
_ALTERNATIVE = {
    move: re.compile(rf"\bor\s+(?:(?:maybe|perhaps|possibly|to|i\s+(?:could|might))\s+)*{stem}", re.IGNORECASE)
    for move, stem in _MENTION.items()
}
# The prompt's own text echoed back names a move without choosing it, as the prompt writes
# it: a history line ("You COOPERATE, They DEFECT") and the options ("COOPERATE/DEFECT").
_ECHO = re.compile(
    r"\bYou (?:COOPERATE|DEFECT),? They (?:COOPERATE|DEFECT)\b|\b(?:COOPERATE/DEFECT|DEFECT/COOPERATE)\b"
)
# The speaker ruling out the move named right after it: "I will not DEFECT", "I won't ever
# COOPERATE", "I'm not going to DEFECT", "I would never DEFECT" — not "why not DEFECT?",
# "no reason not to DEFECT", "I can't not DEFECT" or "I will not only DEFECT".
_RULED_OUT = re.compile(
    r"\b(?:i|we)(?:'m|’m|\s+am|\s+are|'re|’re)?\s+"
    r"(?:(?:will|would|shall|should|do|must)\s+(?:not|never)|(?:won|wouldn|shouldn|don)['’]t|never|not)"
    r"\s+(?:ever\s+|going\s+to\s+)?\Z",
    re.IGNORECASE,
)
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
_LIST_ITEM = re.compile(r"\s*(?:[-*+•]|\d{1,3}[.)])\s")


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
    reply = _THINKING.sub("", reply)
    readings = [_read_word(reply), _read_json(reply), _read_line(reply, finish_reason)]
    if _CONTESTED in readings:
        return AMBIGUOUS
    readings = [r for r in readings if r.action is not None]
    if len({r.action for r in readings}) != 1:
        return AMBIGUOUS
    return readings[0]


def _visible(text: str) -> str:
    """`text` in NFKC form (full-width letters as ASCII) without invisible format characters
    (zero-width spaces, a byte-order mark, soft hyphens)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")


def _clean(line: str) -> str:
    """A line without struck-through text, markdown emphasis, leading headers and quote
    marks, quotation marks and trailing punctuation. A question mark or an ellipsis stays:
    "DEFECT?" and "DEFECT..." are not answers."""
    line = _STRUCK.sub("", _visible(line))
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


def _is_heading(raw: list[str], index: int) -> bool:
    """Line `index` ends with a colon and the next line is a list item: it heads the list
    ("DEFECT:" over its payoffs), it does not answer ("DEFECT:" then why is an answer)."""
    if not _EMPHASIS.sub("", _visible(raw[index])).rstrip().endswith((":", "：")):
        return False
    after = next((line for line in raw[index + 1 :] if line.strip()), "")
    return bool(_LIST_ITEM.match(after))


def _read_line(reply: str, finish_reason: str | None) -> Reading:
    raw = reply.splitlines()
    found = [(i, _line_action(line)) for i, line in enumerate(raw) if _HAS_CONTENT.search(_clean(line))]
    if not found:
        return AMBIGUOUS
    if len({action for _, action in found} - {None}) > 1:
        return _CONTESTED  # two lines state different moves
    (first_index, first), (last_index, last) = found[0], found[-1]
    first = None if _is_heading(raw, first_index) else first
    last = None if _is_heading(raw, last_index) else last
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
    # "…maybe defecting is better"). Prose that only explains ("I will not defect", "I will
    # not DEFECT"), and the prompt's own words echoed ("You COOPERATE, They DEFECT",
    # "cooperate or defect"), stay.
    rest = _visible("\n".join(raw[first_index + 1 :]))
    other = "DEFECT" if first == "COOPERATE" else "COOPERATE"
    if (
        _names_as_move(other, _ECHO.sub(" ", rest))
        or _ALTERNATIVE[other].search(rest)
        or (_OTHER_MOVE[other].search(rest) and _REVISION.search(rest))
    ):
        return _CONTESTED
    return Reading(first, "line")


def _names_as_move(move: Action, text: str) -> bool:
    """`text` names `move` in capitals, as the prompt spells a move, other than the speaker
    ruling it out in a statement (a question mark ends no statement: "…I not DEFECT?")."""
    for m in re.finditer(rf"\b{move}\b", text):
        ends = re.search(r"[.!?\n]", text[m.end() :])
        question = ends is not None and ends.group() == "?"
        if question or not _RULED_OUT.search(text, 0, m.start()):
            return True
    return False


class _Fields(list[tuple[str, object]]):
    """A JSON object's fields in order, duplicates kept."""


def _read_json(reply: str) -> Reading:
    text = reply.strip()
    if not text.startswith("{"):
        blocks = _FENCED.findall(reply)
        if len(blocks) != 1:
            return AMBIGUOUS
        text = blocks[0].strip()
    try:  # every key as written: a field given twice ("decision" and "Decision") is read twice
        data = json.loads(text, object_pairs_hook=_Fields)
    except (ValueError, RecursionError):  # not JSON, or nested past the interpreter's limit
        return AMBIGUOUS
    if not isinstance(data, _Fields):
        return AMBIGUOUS
    values = [value for key, value in data if key.lower() in _DECISION_FIELDS]
    actions = {DECISION_WORDS.get(_clean(v).upper()) if isinstance(v, str) else None for v in values}
    if len(actions) != 1 or None in actions:
        return AMBIGUOUS
    return Reading(actions.pop(), "json")


# -- strategies ---------------------------------------------------------------------------

STRATEGY_WORDS = 100  # past this a strategy is flagged over_limit
STRATEGY_MAX_WORDS = 200  # and past this it is cut, flagged truncated
# A line that starts the strategy: indentation, markdown, a bullet or a number, optionally
# "Final", the word, a colon (or full-width colon), e.g. "STRATEGY:", "**Strategy**:",
# "## Final strategy:", "- STRATEGY:", "2. STRATEGY:", "> strategy：", in full-width letters too
# ("ＳＴＲＡＴＥＧＹ：", as models writing CJK text spell it).
_SPACE = r"[^\S\r\n]"  # a space or tab, or a no-break space
# Possessive (*+): what comes before the word is taken once, never tried again in other
# splits, so a line of "* * * * …" costs linear time, not seconds.
_STRATEGY_MARKER = re.compile(
    rf"^(?:{_SPACE}|[>#*_`+•-]|\d{{1,3}}[.)])*+"
    rf"(?:(?:final|ｆｉｎａｌ){_SPACE}++)?(?:strategy|ｓｔｒａｔｅｇｙ)(?:{_SPACE}|[*_`])*+[:：][*_`]*",
    re.IGNORECASE | re.MULTILINE,
)


def extract_strategy(reply: str, finish_reason: str | None = None) -> tuple[str | None, list[str]]:
    """The strategy a strategy reply ends with, and its flags (SPEC §4).

    The text after the last marker line (see `_STRATEGY_MARKER`) to the end of the reply,
    whitespace normalised to single spaces, kept whole up to 200 words. A last marker with
    nothing after it (a reply ending "STRATEGY:") is passed over for the one before.
    Flags: `over_limit` past 100 words; `truncated` when cut at 200 words, or when the
    reply was cut off by max_tokens after the marker; `multiple_markers` when more than one
    marker line; `marker_missing` when there is no marker (or nothing after any): the text
    is then the last 100 words of the reply, where the rule usually is.
    A reply cut off by max_tokens without a marker, or with no words at all, is a failed
    strategy call: text None.
    """
    markers = list(_STRATEGY_MARKER.finditer(reply))
    flags = ["multiple_markers"] if len(markers) > 1 else []
    words: list[str] = []
    ends = [m.start() for m in markers[1:]] + [len(reply)]  # each marker's text ends at the next
    for marker, end in reversed(list(zip(markers, ends))):  # noqa: B905 (no markers: no pairs)
        words = reply[marker.end() : end].split()
        if words:
            break
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
