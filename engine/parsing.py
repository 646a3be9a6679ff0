"""Reading model replies: the move a decision reply names (SPEC §5.2) and the strategy a
strategy reply ends with (SPEC §4). Pure functions, no I/O."""

import functools
import itertools
import json
import re
import unicodedata
from typing import Literal, NamedTuple

from engine.models import Action

ReadRule = Literal["word", "line", "json"]
CUT_OFF = "length"  # the finish_reason of a reply stopped by max_tokens

DECISION_WORDS: dict[str, Action] = {"COOPERATE": "COOPERATE", "DEFECT": "DEFECT"}
_OTHER: dict[Action, Action] = {"COOPERATE": "DEFECT", "DEFECT": "COOPERATE"}
_WHOLE_REPLY_WORDS: dict[str, Action] = {**DECISION_WORDS, "C": "COOPERATE", "D": "DEFECT"}
# What a decision line may carry before its word ("Final answer: DEFECT", "I choose COOPERATE"):
# SPEC §5.2's list, no more ("My move:" and the prompt's own "Decision (COOPERATE/DEFECT):" are not on it).
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
_ANSWER_KEY = re.compile(r"answer|final|decision|choice|move|action|verdict|play|this_round", re.IGNORECASE)
_ABOUT_OTHERS = re.compile(
    r"histor|previous|last|past|record|prior|predict|expect", re.IGNORECASE
)  # what was, or will be
_FENCED = re.compile(r"^[ \t]*```[^\n`]*\n(.*?)\n[ \t]*```[ \t]*$", re.DOTALL | re.MULTILINE)
_EMPHASIS = re.compile(r"[*_`~]")
_LEAD = re.compile(r"^[\s#>]*")  # headers and quote marks
_QUOTES = str.maketrans("", "", "\"'“”‘’«»„")
_TRAILING = ".!,;:。！"
_STRUCK = re.compile(r"~~.*?~~")  # struck-through text is withdrawn, not emphasised
# In a scratchpad: what the output's format is (a move named there is no choice), "e.g." and
# "i.e." (their dots do not end a sentence), and what comes before a conclusion's move.
_FORMAT_TALK = re.compile(
    r"\b(?:output|format|eg|example|respond|reply|one word|single word|answer with)\b", re.IGNORECASE
)
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e)\.", re.IGNORECASE)
_CONCLUSION_MARK = re.compile(r"->|=>|→|\b(?:so|thus|therefore|hence|then)\b", re.IGNORECASE)
_CONDITIONAL = re.compile(r"\W*(?:if|when|whenever|unless|should|in case)\b", re.IGNORECASE)  # a plan, not a conclusion
# A reasoning model's scratchpad ahead of its answer ("<think>…</think>COOPERATE") is not the reply.
_THINKING = re.compile(r"\A\s*<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_UNCLOSED_THINKING = re.compile(r"\s*<(?:think|thinking)>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"^[ \t]*</(?:think|thinking)>[ \t]*$", re.IGNORECASE | re.MULTILINE)  # on its own line
# A move named in any form: the verb and its nouns ("cooperating", "defection"), with any
# hyphen ("co-operate", "co‑operate"), and in the other languages models answer in
# (coopérer, kooperieren, 合作; trahir, traicionar, verraten, 背叛). Scripts without spaces
# between words (Chinese, Japanese) have no word boundary to anchor on.
_MENTION = {
    "COOPERATE": (r"co[-\u2010-\u2015\u2212]?operat|coop[eéè]r|kooper|collabor|forgiv", r"合作|協力|协作"),
    "DEFECT": (r"d[eé]fect|betray|retaliat|punish|trahi|traicion|verrat", r"背叛|裏切"),
}
_MENTIONS = {move: re.compile(rf"\b(?:{latin})|{cjk}", re.IGNORECASE) for move, (latin, cjk) in _MENTION.items()}
# The move's own English words, the only ones that vouch for an answer ("mutual punishment" does not).
_NAMES = {
    "COOPERATE": re.compile(r"\bco[-\u2010-\u2015\u2212]?operat", re.IGNORECASE),
    "DEFECT": re.compile(r"\bdefect", re.IGNORECASE),
}
# The prompt's own text echoed back names a move without choosing it, as the prompt writes
# it: a history line ("You COOPERATE, They DEFECT") and the options ("COOPERATE/DEFECT").
_ECHO = re.compile(
    r"\bYou (?:COOPERATE|DEFECT),? They (?:COOPERATE|DEFECT)\b|\b(?:COOPERATE/DEFECT|DEFECT/COOPERATE)\b"
)
# The speaker ruling out the move named right after it: "I will not defect", "I won't ever
# COOPERATE", "I'm not going to DEFECT", "I would never defect", "I choose not to defect" —
# not "why not DEFECT?", "no reason not to DEFECT", "I can't not DEFECT" or "I will not only DEFECT".
_RULED_OUT = re.compile(
    r"(?:\b(?:i|we)(?:'m|’m|\s+am|\s+are|'re|’re|'d|’d)?\s+"
    r"(?:(?:will|would|shall|should|do|must|can|could)\s+(?:not|never)|(?:won|wouldn|shouldn|don|can|couldn)['’]t"
    r"|cannot|never|not|(?:choose|chose|decide|decided|prefer|want|plan|intend)\s+not\s+to|refuse\s+to|hate\s+to"
    r"|(?:am|'m|’m)?\s*(?:unwilling|not\s+about|not\s+going)\s+to|(?:have|'ve)\s+no\s+intention\s+of"
    r"|(?:am|'m|’m)?\s*(?:done|through|finished)(?:\s+with)?|stop(?:ped|ping)?|quit(?:ting)?|(?:have|'ve)\s+had\s+enough\s+of"
    r"|(?:am|'m|’m)?\s*tired\s+of)"
    r"|\bno\s+more|\b(?:enough|no\s+point\s+in|no\s+sense\s+in))"
    r"\s+(?:ever\s+|going\s+to\s+|keep\s+|continue\s+(?:to\s+)?|be\s+)?\Z",
    re.IGNORECASE,
)
# The speaker choosing the move named right after: "I cooperate", "I'll defect", "so I
# defect too", "I will cooperate again", "my strategy says to cooperate", "my move is to
# defect" — nothing else in between ("I'm done cooperating", "I only cooperate with…",
# "I refuse to defect", "I can't avoid defecting" are no choice of it).
_CHOOSES = re.compile(
    r"(?:\b(?:i|we)(?:'ll|’ll|\s+will|\s+shall|\s+must|\s+should|\s+am\s+going\s+to|'m\s+going\s+to|\s+choose\s+to"
    r"|\s+decide\s+to|\s+decided\s+to|\s+plan\s+to|\s+have\s+to|\s+need\s+to|\s+want\s+to|\s+prefer\s+to)?"
    r"|\b(?:strategy|rule|tit[- ]for[- ]tat|grim[- ]trigger)\s+(?:says|tells\s+me|calls\s+for|requires|dictates|means)"
    r"(?:\s+(?:me\s+)?to)?|\bmy\s+(?:move|choice|decision|answer)\s+is(?:\s+to)?|\b(?:i|we)\s+(?:go|am\s+going)\s+with"
    r"|\b(?:i|we|strategy|default)?\s*(?:start(?:s|ing)?|begin(?:s|ning)?|open(?:s|ing)?)\s+(?:by|with)"
    r"|\bstrategy\s+(?:is|starts|begins)\s+(?:to\s+)?(?:always\s+|start\s+by\s+|begin\s+by\s+)?"
    r"|\b(?:i|we)\s+(?:continue|keep)(?:\s+to)?|\bcontinue\s+(?:to\s+)?|\bdefault\s+of|\btit[- ]for[- ]tat\s*:"
    r"|\bi\s+follow\s+my\s+strategy\s+and|\bas\s+my\s+strategy\s+(?:says|dictates))"
    r"\s+(?:(?:also|again|still|therefore|too|then|now)\s+)?\Z",
    re.IGNORECASE,
)
# The other move where it cannot be the speaker's choice: done by someone else ("they
# defected", "Opponent C has never cooperated", "anyone who has not defected"), turned down
# ("no reason to defect", "rather than defecting", "instead of cooperating"), or a noun for
# what someone else did ("their defection", "a history of defection"). Matched on the words
# right before the mention. ("than" and "mutual" are not among them: "no better move than
# cooperating", "I'll take mutual cooperation" choose it.)
_THEIRS = re.compile(
    r"(?:\b(?:they|he|she|who|opponent(?:\s+[A-Z])?|player(?:\s+[A-Z])?|anyone|everyone|someone|nobody|no one)"
    r"(?:'ve|’ve|'s|’s)?\s+(?:(?:has|have|had|did|does|do|was|were|is|are|been|never|always|only|just|also|again|not"
    r"|n't|once|ever|yet|even|mostly|consistently|repeatedly|kept|keeps|might|may|will|would|could"
    r"|chose|chosen|choose|chooses|picked|played|plays)\s+)*"
    r"|\b(?:history of|their|his|her|the opponent's|opponent's|despite|after)\s+)\Z",
    re.IGNORECASE,
)
_TURNED_DOWN = re.compile(
    r"\b(?:no reason to|rather than|instead of|over|no)\s+(?:(?:try|trying|choosing|going)\s+to\s+)?\Z",
    re.IGNORECASE,
)
# A move as a clause's subject in a counterfactual ("Cooperating would give us 3 each"): no
# statement of the speaker's own choice; one with a word against it ("…would break trust")
# speaks against the move. Only words against count: a list of words for it ("better",
# "smart", "logical", "appropriate", "the most sense" …) is never complete.
_AGAINST = re.compile(
    r"\b(?:break\w* (?:trust|faith|the trust|our|my)|broke|lose|losing|lost|hurt\w* (?:me|us)|harm\w* (?:me|us)|exploit\w*"
    r"|reward (?:that|this|them|their|it)|invite\w*"
    r"|risk\w*|throw\w* away|wast\w*|worse|backfire\w*|damag\w*|undermin\w*|foolish|naive|pointless|suicid\w*"
    r"|suckers?|punish\w* me|get (?:me )?burned|taken advantage)\b",
    re.IGNORECASE,
)
_MENTIONS_AT_MOST = 20
_CLAUSE_START = re.compile(r"(?:\A|[.,;:!?(\n–—-]|\b(?:and|but|so|though|since|as|because|while))\s*\Z", re.IGNORECASE)
_COUNTERFACTUAL = re.compile(r"\w*(?:\s+[\w']+){0,5}?\s+(?:would|could|might)\b[^.!?\n]{0,200}", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?\n]")
# Words with which a speaker corrects, doubts or hedges what it just said: after an answer,
# enough alone ("Wait, …", "Apologies, that was a mistake. …", "I got that backwards").
_WAVERING = re.compile(
    r"\b(?:wait|hold on|hmm+|actually|oops|sorry|apolog\w*|mistake\w*|my bad|wrong|misspo\w*|misread\w*|mixed up"
    r"|backwards?|opposite|(?:the )?other (?:way|direction|option|choice)|flip\w*|closer (?:look|inspection)"
    r"|look\w* again|double.?check\w*|check\w* again|revers\w*|i mean|i meant|correct(?:ing|ion|ed)\b|correct (?:that|myself|this)"
    r"|stand corrected|second thoughts?|on (?:further )?reflection|(?:up)?on (?:further )?review|reconsider\w*|rethink\w*"
    r"|let me re[-\w]+|redo|scratch that|strike that|disregard|ignore (?:my|the|that)|pardon|slip|whoops|edit:|never ?mind"
    r"|lean\w*"
    r"|(?:just )?kidding|take (?:it|that) back|chang\w* (?:my|that|it)\b|let me (?:revise|fix)|switch\w*"
    r"|instead(?!\s+of)|maybe|perhaps|probably|possibly|not (?:sure|certain)|unsure|uncertain|hard to say|undecided"
    r"|can'?t decide|torn)\b",
    re.IGNORECASE,
)
# Doing what the other did, said without naming the move. Elliptic, pointing back at a
# verb ("Opponent C already did, so now I will", "…and so will I"): with the other move
# named anywhere, even ruled out ("I would never defect first, but…"). Mirroring ("gets
# matched", "in kind", "return the favour"): with the other move named as someone's act.
_ELLIPTIC = re.compile(
    r"\bso\s+(?:now\s+)?(?:will|shall|should|must|do|would|can)\s+i\b|\b(?:and|so)\s+i\s+(?:will|shall|do)\s+too\b"
    r"|\bme too\b|\bnow i will\b|\bfrom me\b|\b(?:neither|nor)\s+(?:will|shall|do|would|can)\s+i\b",
    re.IGNORECASE,
)
_MIRRORS = re.compile(
    r"\bfollow\w* suit\b|\bin kind\b|\breturn\w* the favou?r\b|\blikewise\b|\bthe same\b"
    r"|\b(?:match|mirror|copy|copies|echo|repeat)\w*\b",
    re.IGNORECASE,
)
# The words English prose cannot do without: an explanation with almost none of them is in a
# language the rules above do not read ("L'avversario C ha tradito, quindi tradisco anch'io"),
# so it cannot vouch for the answer.
_ENGLISH = frozenset(
    "a an the and or but so because if then than that this these those it its is are was were be been being "
    "i me my we our you your they them their he she his her who which what to of in on at for with from by as "
    "not no do does did will would should can could have has had just only also all any every last round game "
    "opponent strategy move first again now there here".split()
)
# A line that only leads in to the answer ("Here is my decision:", "My final answer:").
_LEAD_IN = re.compile(
    r"^[^\S\n]*[#>*_\s]*(?:(?:so|therefore|thus|ok(?:ay)?|well|alright)[,\s]+)?(?:here(?:'s|\s+is)\s+)?(?:my\s+)?(?:final\s+)?"
    r"(?:answer|decision|move|choice|response|verdict|reply)(?:\s+is)?[*_\s]*[:：]?[*_\s]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCES = re.compile(r"[^.!?\n]+[.!?]*")
# A move weighed, not chosen: "I could DEFECT", "I considered COOPERATE", "thinking about defecting".
_HYPOTHETICAL = re.compile(
    r"\b(?:could|might|may|can|would|'d|consider\w*|thought about|thinking about|weigh\w*|want(?:ed)? to|tempted to"
    r"|like to|normally|usually|typically|otherwise)\s+(?:\w+\s+){0,1}\Z",
    re.IGNORECASE,
)
# After a mention: a rule's condition ("cooperate unless the opponent defected"), no choice;
# the move as a sentence's subject with a word against it ("COOPERATE has not worked"),
# none either (with none, "cooperation is clearly the best choice", it may be one).
_RULE = re.compile(  # matched right after a mention, which may end mid-word ("cooperat|e only with…")
    r"\w*(?:[^\S\n]*(?:\w+[^\S\n]+){0,2}?(?:unless|until|if|as long as|only|except|later|when|next\s+round"
    r"|in\s+the\s+(?:final|last)\s+round|not\s+now|not\s+this)\b"
    r"|[^\S\n]+(?:with|against|toward|towards)[^\S\n]+(?:\w+[^\S\n]+){0,2}?(?:who|cooperators|defectors|exploiters"
    r"|betrayers|cheaters|those|anyone|players|partners|opponents)\b|[^\S\n]+first[,;]?[^\S\n]+then\b)",
    re.IGNORECASE,
)
_SUBJECT = re.compile(
    r"\w*[^\S\n]+(?:has|have|had|is|was|does|did|gives|pays|yields|means|leads|works|worked)\b[^.!?\n]{0,200}",
    re.IGNORECASE,
)
_CONTRAST = re.compile(
    r"\b(?:but|however|though|although|yet|nevertheless|nonetheless|still|that said|except|then again|on the other hand"
    r"|having said that|that being said|come to think of it|even so|all the same|regardless|instead)\b",
    re.IGNORECASE,
)
_PAST = re.compile(r"\w*ed\b", re.IGNORECASE)
_RULE_QUOTED = re.compile(  # "My strategy: cooperate…", "my rule is to defect…" — not "my strategy says to cooperate"
    r"\b(?:strategy|rule|instructions?|policy|plan|principle|default)\b[^.\n]{0,40}?(?::|—|\bis to|\breads)\s*[\"“'‘]?\s*\Z",
    re.IGNORECASE,
)
_NOT = re.compile(r"\b(?:not|never|no longer)\b|n't\b", re.IGNORECASE)
_HARDLY = re.compile(
    r"\b(?:hardly|barely|scarcely|nothing|little|them|their)\b", re.IGNORECASE
)  # "…would lose me nothing", "…hurt them"
_UNTIL = re.compile(r"[^.!?\n]{0,80}?\b(?:until|till|before|except)\b", re.IGNORECASE)
_NEGATED = re.compile(r"\b(?:never|not|n't|no)\b(?:\s+\w+){0,2}\s+\Z", re.IGNORECASE)  # "has never once defected"
_NO = re.compile(r"\bno\s+\Z", re.IGNORECASE)  # "No cooperation until…" after COOPERATE
_LETTERS = re.compile(r"[^\W\d_]+")
_WORD = re.compile(r"[^\W\d_]{2,}")  # a word, not the "m" of a stray "\x1b[0m"
_CONDITION = re.compile(r"\b(?:if|unless|when|once|whenever|should they|had they)\b[^.!?\n]*\Z", re.IGNORECASE)
# A reply that runs on into a new exercise or chat turn of its own making ("### Exercise 2",
# "Question 3:", "User:", "<|im_start|>", the prompt's first words again) ends there: what
# follows answers a question nobody asked.
_NEW_TURN = re.compile(
    r"^[^\S\n]*(?:#{1,6}[^\S\n]*)?(?:exercise|question|problem|example|instruction|task)[^\S\n]*#?\d"
    r"|^[^\S\n]*#{1,6}[^\S\n]*(?:exercise|question|problem|instruction|task|input|response)\b"
    r"|^[^\S\n]*(?:user|human)[^\S\n]*:"
    r"|<\|(?:im_start|im_end|user|assistant|system|end|eot_id|endoftext|start_header_id)\|>|\[INST\]|</s>"
    r"|you are playing prisoner'?s dilemma",
    re.IGNORECASE | re.MULTILINE,
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
    If two rules read different moves, the reply is ambiguous; so is a reply longer than
    DECISION_MAX_CHARS. Anything else — prose,
    negations, hedges, other languages — is ambiguous: the caller asks again. A reply cut
    off by max_tokens (`finish_reason` "length") counts only under `word`, `json`, or
    `line` on its first line, and only if that line was finished (a newline follows it).
    """
    if len(reply) > DECISION_MAX_CHARS:
        return AMBIGUOUS
    if len(reply) <= _CACHED_UP_TO:
        return _parse_cached(reply, finish_reason)
    return _parse(reply, finish_reason)


# A decision reply is at most 100 tokens (SPEC §5.2), a few hundred characters; one past this
# answers something else (a server or proxy gone wrong) and is not read, nor searched for
# seconds on the event loop.
DECISION_MAX_CHARS = 100_000
_CACHED_UP_TO = 4096  # a cache of huge replies would keep them all in memory


@functools.lru_cache(maxsize=1024)  # a pure function of its arguments; most replies repeat
def _parse_cached(reply: str, finish_reason: str | None) -> Reading:
    return _parse(reply, finish_reason)


def _scratchpad(reply: str) -> tuple[str | None, str]:
    """(a reasoning model's scratchpad, the reply after it): `<think>…</think>` at the start,
    or, where the chat template opened the scratchpad itself (DeepSeek R1's does), all before
    a `</think>` on a line of its own that no `<think>` precedes and a reply follows (a tag
    quoted in a sentence, or one left at the very end, ends nothing). (None, reply) when
    there is none."""
    thinking = _THINKING.match(reply)
    if thinking:
        block = thinking.group()
        return block[block.index(">") + 1 : block.rindex("</")], reply[thinking.end() :]
    close = _THINK_CLOSE.search(reply)
    if close and not _THINK_OPEN.search(reply, 0, close.start()) and reply[close.end() :].strip():
        return reply[: close.start()], reply[close.end() :]
    return None, reply


def _parse(reply: str, finish_reason: str | None) -> Reading:
    scratchpad, reply = _scratchpad(reply)
    new_turn = _NEW_TURN.search(reply, 1)
    end = len(reply) if new_turn is None else new_turn.start()
    readings = [_read_word(reply), _read_json(reply), _read_line(reply, finish_reason, end)]
    if _CONTESTED in readings:
        return AMBIGUOUS
    readings = [r for r in readings if r.action is not None]
    if len({r.action for r in readings}) != 1:
        return AMBIGUOUS
    if scratchpad is not None and _concluded(_OTHER[readings[0].action], scratchpad):
        return AMBIGUOUS  # the scratchpad chose the other move: the reply contradicts itself
    return readings[0]


def _concluded(move: Action, scratchpad: str) -> bool:
    """Whether a reasoning model's scratchpad (`<think>…</think>`) concludes for `move`. Its
    last sentence that names a move, and not the output's format ("…a single word, e.g.
    DEFECT"), does: the move alone or after a label, a connective or an arrow ("Answer:
    COOPERATE", "So: COOPERATE.", "Therefore COOPERATE.", "…they cooperated → COOPERATE"),
    or the speaker choosing it ("I will cooperate.")."""
    scratchpad = _ABBREVIATION.sub("eg", _visible(scratchpad))
    named = [
        m.group()
        for m in _SENTENCES.finditer(scratchpad)
        if (_MENTIONS["COOPERATE"].search(m.group()) or _MENTIONS["DEFECT"].search(m.group()))
        and not _FORMAT_TALK.search(m.group())
        and not _CONDITIONAL.match(m.group())
    ]
    if not named:
        return False
    last = _clean(named[-1])
    after = _CONCLUSION_MARK.split(last)[-1].strip(" :-")
    return (
        _read_word(after).action == move
        or _line_action(last) == move
        or _concludes_for(move, named[-1], speaker_only=True)
    )


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


def _read_line(reply: str, finish_reason: str | None, end: int) -> Reading:
    """The first or last line's move; the last line is the last before `end`, where a reply
    that ran on into a new exercise or turn of its own stopped answering (`_NEW_TURN`)."""
    raw = reply.splitlines()
    found = [(i, _line_action(line)) for i, line in enumerate(raw) if _HAS_CONTENT.search(_clean(line))]
    if len({action for _, action in found} - {None}) > 1:
        return _CONTESTED  # two lines state different moves
    answered = len(reply[:end].splitlines())
    found = [(i, action) for i, action in found if i < answered]
    if not found:
        return AMBIGUOUS
    (first_index, first), (last_index, last) = found[0], found[-1]
    first = None if _is_heading(raw, first_index) else first
    last = None if _is_heading(raw, last_index) else last
    if finish_reason == CUT_OFF:  # the last line was never finished; the first must have been
        finished = first_index + 1 < len(raw) or reply.endswith(("\n", "\r"))
        last, first = None, first if finished else None
    if last is not None and (last_index > first_index or end == len(reply)):
        answered_first = first == last and first_index < last_index  # "DEFECT\n\n…\n\nDEFECT"
        if _reasoning_against(last, "\n".join(raw[:last_index]), answered_first):
            return _CONTESTED
        return Reading(last, "line")  # the conclusion (a line it ran on to is not one)
    if first is None:
        return AMBIGUOUS
    # Answered first: the answer stands only if nothing after it takes it back (see `_takes_back`).
    if _takes_back(first, "\n".join(raw[first_index + 1 :]), finish_reason == CUT_OFF):
        return _CONTESTED
    return Reading(first, "line")


def _takes_back(move: Action, text: str, cut_off: bool = False) -> bool:
    """Whether `text`, after an answer `move`, may take it back — so the reply is asked
    again rather than read. It does when it:
    - corrects, doubts or hedges (`_WAVERING`: "Wait, …", "Apologies, that was a mistake",
      "I got that backwards", "probably"), whatever words it then uses for the move;
    - names the other move in any form (a verb or a noun, any case, any hyphen, a synonym,
      another language: "…so cooperating is the right call", "…所以我应该合作") where it
      could be the speaker's choice: anything but ruled out by the speaker ("I will not
      defect"), done or said by someone else ("they defected"), turned down ("no reason to
      defect", "rather than defecting"), a noun for what someone else did ("their
      defection"), a counterfactual with a word against it ("cooperating would just reward
      that"), or the prompt's own words echoed ("You COOPERATE, They DEFECT");
    - with the other move named other than ruled out, does what the other did without
      naming it ("Opponent E defected, and so will I", "gets matched", "return the favour");
    - rules out the answer itself ("DEFECT\n\nI won't defect against a friend");
    - was `cut_off` by max_tokens while it named the other move in any way ("…but they
      have defected twice, which means my strategy now calls for");
    - does not conclude for the answer (`_concludes_for`).
    An explanation that does none of these stands."""
    text = _visible(text)
    if _WAVERING.search(text) or not _reads_as_english(text):
        return True
    other = "DEFECT" if move == "COOPERATE" else "COOPERATE"
    said = text  # with the prompt's words echoed: "They DEFECT" vouches for DEFECT
    text = _ECHO.sub(" ", text)
    mentions = list(_MENTIONS[other].finditer(text))
    if len(mentions) > _MENTIONS_AT_MOST or (mentions and cut_off):
        return True  # (an answer followed by dozens of mentions of the other move is no clear answer)
    if (mentions or _MENTIONS[move].search(text)) and _ELLIPTIC.search(text):  # "…never defected, and neither will I"
        return True
    acts = [m for m in mentions if not _RULED_OUT.search(text, max(0, m.start() - 80), m.start())]
    if acts and _MIRRORS.search(text):  # the other move someone made, and "gets matched"
        return True
    own = itertools.islice(_MENTIONS[move].finditer(text), _MENTIONS_AT_MOST)
    if any(
        _RULED_OUT.search(text, max(0, m.start() - 80), m.start())
        or _NO.search(text, 0, m.start())
        or _subject_against(text, m.end())  # "Cooperation is off the table", "Cooperating got me nowhere"
        or (  # the speaker's own choice of it, framed away: "Never again will I cooperate"
            _CHOOSES.search(text, max(0, m.start() - 80), m.start())
            and _FRAMED.search(text, max(0, m.start() - 80), m.start())
        )
        for m in own
    ):
        return True
    for m in mentions:
        if _question(text, m.end()) or not _not_chosen(text, m.start(), m.end()):
            return True
    # Any explanation must conclude for the answer: one that does not may turn it in words no
    # list holds ("Nope, Opponent C burned me. No more Mr. Nice Guy.", "Nah. Round 2 showed me").
    return _WORD.search(said) is not None and not _concludes_for(move, said, speaker_only=cut_off)


def _reasoning_against(move: Action, reasoning: str, vouched: bool = False) -> bool:
    """Whether the reasoning before an answer `move` (a last line, a JSON block) may say
    otherwise: it states the other move as the speaker's choice, or (unless `vouched`, the
    first line having said the same move) its last sentence, lead-ins aside ("Here is my
    decision:"), does not conclude for the answer."""
    reasoning = _ECHO.sub(" ", _STRUCK.sub("", _visible(reasoning)))
    if _restates(_OTHER[move], reasoning, words=_MENTIONS):
        return True
    return (
        not vouched and _WORD.search(_LEAD_IN.sub(" ", reasoning)) is not None and not _concludes_for(move, reasoning)
    )


def _concludes_for(move: Action, text: str, speaker_only: bool = False) -> bool:
    """Whether the last sentence of `text` (the last with a word) vouches for `move` (what
    comes after a vouch can turn it: only the conclusion counts). A record of `move` alone
    vouches (unless `speaker_only`) when the whole text never names the other move."""
    sentences = [m.group() for m in _SENTENCES.finditer(_LEAD_IN.sub(" ", text))][-50:]
    last = next((sentence for sentence in reversed(sentences) if _WORD.search(sentence)), None)
    if last is None:
        return True
    only_this = not speaker_only and not _MENTIONS[_OTHER[move]].search(_ECHO.sub(" ", text))
    if only_this and _MIRRORS.search(last) and not _CONTRAST.search(last) and _theirs_played(move, text):
        return True  # "Opponent B defected last round. … I should mirror that move."
    return _vouches(move, last, speaker_only=not only_this)


def _vouches(move: Action, text: str, speaker_only: bool = False) -> bool:
    """Whether `text` speaks for `move`: the speaker names it as its own choice ("…so I
    defect", "my strategy says to cooperate"); or turns the other down — rules it out ("I
    will not defect"), "no reason to defect", a counterfactual against it ("cooperating
    would be exploited"), the opponent never playing it ("they never cooperate"); or (unless
    `speaker_only`) it says the opponent played it and never mentions the other move ("They
    defected twice."). A record of both moves does not vouch: the turn after it can be in any
    words ("Opponent B cooperated in round 1, but they defected in round 2, so I'll respond
    accordingly"); nor what a *but*, *however*, *though* … after it may turn ("I should
    defect, but Opponent E seems nice now, so I'll trust them"); nor the strategy's rule
    quoted ("My strategy: cooperate with anyone who…")."""
    plain = _ECHO.sub(" ", text)  # the prompt's history lines echoed are the record, not the speaker's choice
    last_turn = max((m.end() for m in _CONTRAST.finditer(plain)), default=-1)
    if _chooses(move, plain, after=last_turn):
        return True
    others = list(itertools.islice(_MENTIONS[_OTHER[move]].finditer(plain), _MENTIONS_AT_MOST))
    for m in others:
        if m.start() < last_turn:
            continue
        before = max(0, m.start() - 80)
        if (
            _RULED_OUT.search(plain, before, m.start())
            or _TURNED_DOWN.search(plain, before, m.start())
            or (
                _THEIRS.search(plain, before, m.start())
                and _NEGATED.search(plain, before, m.start())
                and not _UNTIL.match(plain, m.end())  # "had never defected until last round"
            )
            or _against(plain, m.start(), m.end())  # "defecting would break trust"
        ):
            return True
    return not speaker_only and not others and last_turn < 0 and _theirs_played(move, text)


def _chooses(move: Action, text: str, after: int = -1) -> bool:
    """The speaker chooses `move` in `text` (after position `after`), in so many words and
    nothing more: "…so I defect.", "I'll cooperate with them again.", "my strategy says to
    cooperate, because…" — the choice (`_CHOOSES`) right before the move and the clause's
    end right after it (`_CLAUSE_END`): not "I'll cooperate the way they did", "…again as
    soon as they…", "…in a future round", "…no longer", "…, I think"; not in a question, a
    condition, a quoted rule or someone's view ("I wish I could say I'll cooperate")."""
    for m in itertools.islice(_NAMES[move].finditer(text), _MENTIONS_AT_MOST):
        before = max(0, m.start() - 80)
        if m.start() < after or not _CHOOSES.search(text, before, m.start()) or _PAST.match(text, m.start()):
            continue
        if not _CLAUSE_END.match(text, m.end()) or _NOT_THE_SPEAKERS.search(text, before, m.start()):
            continue
        if _question(text, m.end()) or _CONDITION.search(text, before, m.start()) or _RULE.match(text, m.end()):
            continue
        if not _quoted(text, m.start()):
            return True
    return False


# What may follow a chosen move before its clause ends: its object, "too", "again", "this
# round", then the end of the clause (. ! ; a new line, the end) or a reason ("because…",
# ", as my strategy says").
_CLAUSE_END = re.compile(
    r"\w*(?:[^\S\n]+(?:with|against)[^\S\n]+(?:them|him|her|it|this\s+\w+|(?:the\s+)?opponent(?:[^\S\n]+[A-Z]\w?)?"
    r"|[A-Z]\w?))?(?:[^\S\n]+(?:too|again|as\s+well|also|(?:in\s+)?this\s+(?:round|time|game)|here|now|today))*"
    r"[\"”’'*_)]*(?:[^\S\n]*(?:[.!;]|\n|\Z)|,?[^\S\n]+(?:because|since|given|following|per|as\s+my|in\s+line\s+with)\b)",
    re.IGNORECASE,
)
# A choice framed away in its own sentence: negated or mocked before it ("Never again will I
# cooperate", "No chance I'll cooperate", "It's not like I'll defect", "Sure, I'll
# cooperate", "Why would I defect"), or put off ("Next round, I'll cooperate", "Someday").
_FRAMED_AWAY = (
    r"(?:\b(?:never|no\s+(?:chance|way)|not\s+(?:a\s+chance|like|in\s+a\s+million|once)|zero\s+chance|fat\s+chance"
    r"|like|sure|su+re|right|who\s+says|why\s+(?:would|should|on\s+earth)|under\s+no|in\s+no\s+way|nowhere"
    r"|only\s+then|eventually|someday|tomorrow|next\s+(?:round|game|time)|in\s+round\s+\d+|later)\b)[^.!?\n]*\Z"
)
_FRAMED = re.compile(_FRAMED_AWAY, re.IGNORECASE)
# Someone else's view or a wish around the speaker's words: "I wish I could say I'll
# cooperate", "they expect I'll defect", "as if I'd cooperate", "Oh sure, I'll defect".
_NOT_THE_SPEAKERS = re.compile(
    r"\b(?:wish|could\s+say|would\s+say|expects?|expected|pretend\w*|as\s+if|oh\s+sure|yeah\s+right|supposed\s+to"
    r"|promised|used\s+to|sure\s+thing|believe|think|thinks|would\s+(?:say|tell)|to\s+say|tell\s+you|answer\s+is"
    r"|joking\w*|naive|hope|hate|want\s+to\s+be|prefers?|preferred|wants?\s+me\s+to)\b[^.!?\n]*\Z|" + _FRAMED_AWAY,
    re.IGNORECASE,
)


def _question(text: str, end: int) -> bool:
    """Whether the sentence going on at `end` ends with a question mark (it states nothing)."""
    ends = _SENTENCE_END.search(text, end, end + 200)  # bounded: linear in the reply
    return ends is not None and ends.group() == "?"


def _restates(move: Action, text: str, words: "dict[Action, re.Pattern[str]] | None" = None) -> bool:
    """Whether `text` may state `move` (by `words`, default its own English words) as the
    speaker's choice: any mention but one turned down, ruled out ("I won't defect", "no
    defection"), someone else's act ("they cooperated"), in a counterfactual, a question, a
    condition ("if they defect, I defect"), a weighing ("I could defect"), a rule's condition
    or a quoted rule. Wider than `_chooses`: what reasoning must not say of the other move."""
    for m in itertools.islice((words or _NAMES)[move].finditer(text), _MENTIONS_AT_MOST):
        before = max(0, m.start() - 80)
        if _question(text, m.end()) or any(
            p.search(text, before, m.start()) for p in (_RULED_OUT, _TURNED_DOWN, _CONDITION, _HYPOTHETICAL)
        ):
            continue
        if _CLAUSE_START.search(text, before, m.start()) and _COUNTERFACTUAL.match(text, m.end()):
            continue
        if _RULE.match(text, m.end()) or _subject_against(text, m.end()):  # "cooperate unless…"
            continue
        if _RULE_QUOTED.search(text, max(0, m.start() - 120), m.start()) or _quoted(text, m.start()):
            continue  # the strategy's rule quoted ("My strategy: cooperate with anyone who…"), not applied
        if not _not_chosen(text, m.start(), m.end()):
            return True
    return False


def _subject_against(text: str, end: int) -> bool:
    """The move mentioned just before `end` is the subject of a clause against it."""
    clause = _SUBJECT.match(text, end)
    return clause is not None and bool(_NOT.search(clause.group()) or _AGAINST.search(clause.group()))


def _quoted(text: str, start: int) -> bool:
    """The position `start` lies inside quotation marks on its line."""
    line = text[text.rfind("\n", 0, start) + 1 : start]
    return line.count('"') % 2 == 1 or line.count("“") > line.count("”")


def _theirs_played(move: Action, text: str) -> bool:
    """The opponent (not the speaker) played `move`, by `text` ("Opponent B defected"), in a
    main clause: not "…a clean slate after they defected", "…since they defected only once"."""
    for m in itertools.islice(_NAMES[move].finditer(text), _MENTIONS_AT_MOST):
        before = max(0, m.start() - 80)
        if (
            _THEIRS.search(text, before, m.start())
            and not _NEGATED.search(text, before, m.start())
            and not _SUBORDINATE.search(text, before, m.start())
        ):
            return True
    return False


_SUBORDINATE = re.compile(
    r"\b(?:after|since|that|once|when|though|although|ever)\s+(?:[\w']+\s+){0,4}\Z", re.IGNORECASE
)


def _reads_as_english(text: str) -> bool:
    """Whether `text` (four words or more) is English enough for the rules to read it: at
    least one word in seven is one of the commonest English words (English prose runs at
    one in two or three)."""
    words = _LETTERS.findall(text[:2000])
    return len(words) < 4 or 7 * sum(w.lower() in _ENGLISH for w in words) >= len(words)


def _not_chosen(text: str, start: int, end: int) -> bool:
    """Whether the mention of a move at text[start:end] cannot be the speaker choosing it:
    ruled out by the speaker, done by someone else, turned down, or the subject of a
    counterfactual that speaks against it ("defecting would break trust", "cooperating
    would be exploited"). A counterfactual without such a word may argue for it
    ("Defecting would be the logical response"), and does not count."""
    before = max(0, start - 80)  # the words just before it, not the whole reply for each mention
    return any(p.search(text, before, start) for p in (_RULED_OUT, _THEIRS, _TURNED_DOWN)) or _against(text, start, end)


def _against(text: str, start: int, end: int) -> bool:
    """The mention at text[start:end] starts a clause whose counterfactual speaks against it."""
    if not _CLAUSE_START.search(text, max(0, start - 80), start):
        return False
    counterfactual = _COUNTERFACTUAL.match(text, end)
    if counterfactual is None or _NOT.search(counterfactual.group()) or _HARDLY.search(counterfactual.group()):
        return False  # "cooperating would not be naive" speaks for it
    return _AGAINST.search(counterfactual.group()) is not None


class _Fields(list[tuple[str, object]]):
    """A JSON object's fields in order, duplicates kept."""


def _read_json(reply: str) -> Reading:
    text = reply.strip()
    span = (reply.find(text), reply.find(text) + len(text))
    if not text.startswith("{"):
        blocks = list(_FENCED.finditer(reply))
        if len(blocks) != 1:
            return AMBIGUOUS
        text, span = blocks[0].group(1).strip(), blocks[0].span()
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
    action = actions.pop()
    # Another field that answers too ("final_answer": "D", "this_round": "DEFECT") and says
    # the other move makes the object contradict itself.
    for key, value in data:
        if isinstance(value, str) and _ANSWER_KEY.search(key) and not _ABOUT_OTHERS.search(key):
            if _WHOLE_REPLY_WORDS.get(_clean(value).upper()) not in (None, action):
                return _CONTESTED
    # Its reasons and the prose after its block are an explanation after the answer; the
    # prose before it, reasoning before it (as for a last line). Moves recorded under a
    # field about the opponent or the past ("opponent_last_move": "DEFECT", a history of
    # {"me": …, "them": …}) are neither.
    reasons = [
        value
        for key, value in data
        if key.lower() not in _DECISION_FIELDS and not (_ABOUT_OTHERS.search(key) and _only_moves(value))
    ]
    if _takes_back(action, "\n".join([*_strings(reasons), reply[span[1] :]])):
        return _CONTESTED
    if _reasoning_against(action, reply[: span[0]]):
        return _CONTESTED
    return Reading(action, "json")


def _only_moves(value: object) -> bool:
    """Every string value in `value` (not its keys) is a move word."""
    if isinstance(value, str):
        return DECISION_WORDS.get(_clean(value).upper()) is not None
    if isinstance(value, _Fields):
        return all(_only_moves(item) for _, item in value)
    if isinstance(value, list):
        return all(_only_moves(item) for item in value)
    return True


def _strings(value: object) -> list[str]:
    """Every string in a decoded JSON value (keys of nested objects too)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, _Fields):
        return [text for key, item in value for text in (key, *_strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


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
    A reply cut off by max_tokens without a marker, or with no words but markers, is a
    failed strategy call: text None. A reasoning model's scratchpad (`<think>…</think>` at
    the start, or all before a `</think>` no `<think>` precedes) is not the reply: its
    drafts are not the strategy. A reply cut off inside it never got to the reply: a
    failed call.
    """
    _, reply = _scratchpad(reply)
    if finish_reason == CUT_OFF and _UNCLOSED_THINKING.match(reply):
        return None, ["marker_missing"]
    markers = list(_STRATEGY_MARKER.finditer(reply))
    flags = ["multiple_markers"] if len(markers) > 1 else []
    words: list[str] = []
    ends = [m.start() for m in markers[1:]] + [len(reply)]  # each marker's text ends at the next
    for marker, end in reversed(list(zip(markers, ends))):  # noqa: B905 (no markers: no pairs)
        words = reply[marker.end() : end].split()
        if words:
            break
    if not words:
        words = _STRATEGY_MARKER.sub(" ", reply).split()  # an empty marker is no rule ("STRATEGY:" alone)
        if finish_reason == CUT_OFF or not words:
            return None, flags + ["marker_missing"]
        return " ".join(words[-STRATEGY_WORDS:]), flags + ["marker_missing"]
    cut = []
    if len(words) > STRATEGY_WORDS:
        cut.append("over_limit")
    if len(words) > STRATEGY_MAX_WORDS or finish_reason == CUT_OFF:
        cut.append("truncated")
    return " ".join(words[:STRATEGY_MAX_WORDS]), cut + flags
