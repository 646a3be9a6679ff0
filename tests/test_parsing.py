import re
from collections import Counter

import pytest

from engine.parsing import DECISION_MAX_CHARS, Reading, extract_strategy, parse_decision
from tests.support.corpora import (
    DECISION_CORPUS,
    ORDINARY_DECISIONS,
    ORDINARY_DECISIONS_2,
    ORDINARY_DECISIONS_3,
    ORDINARY_DECISIONS_4,
    ORDINARY_DECISIONS_5,
    ORDINARY_DECISIONS_6,
    OUTSIDE_DECISIONS,
    OUTSIDE_DECISIONS_2,
    OUTSIDE_STRATEGIES,
    OUTSIDE_STRATEGIES_2,
    REDTEAM_DECISIONS,
    REDTEAM_DECISIONS_2,
    REDTEAM_DECISIONS_3,
    REDTEAM_DECISIONS_4,
    REDTEAM_DECISIONS_5,
    REDTEAM_DECISIONS_6,
    REDTEAM_DECISIONS_7,
    REDTEAM_DECISIONS_8,
    REDTEAM_STRATEGIES,
    STRATEGY_CORPUS,
)

C, D = "COOPERATE", "DEFECT"

DECISIONS = [
    # word: the whole reply is one decision word
    ("COOPERATE", C, "word"),
    ("DEFECT", D, "word"),
    ("cooperate", C, "word"),
    ("Defect", D, "word"),
    ("cooperate.", C, "word"),
    ("**DEFECT**", D, "word"),
    ("`COOPERATE`", C, "word"),
    ("_defect_", D, "word"),
    ("# DEFECT", D, "word"),
    ("> cooperate", C, "word"),
    ('"DEFECT"', D, "word"),
    ("“Cooperate!”", C, "word"),
    ("  DEFECT \n\n", D, "word"),
    ("C", C, "word"),
    ("D", D, "word"),
    ("c.", C, "word"),
    ("**D**", D, "word"),
    ("```\nDEFECT\n```", D, "word"),
    # line: the first or the last line is only a decision word, maybe after a label
    ("Decision: DEFECT", D, "line"),
    ("**Decision:** cooperate", C, "line"),
    ("Final answer: 'DEFECT'.", D, "line"),
    ("## Final Decision — COOPERATE", C, "line"),
    ("Move -> DEFECT", D, "line"),
    ("Choice → cooperate", C, "line"),
    ("My decision is: DEFECT", D, "line"),
    ("I choose COOPERATE.", C, "line"),
    ("Answer：DEFECT", D, "line"),
    ("The opponent defected twice in a row.\nDecision: DEFECT", D, "line"),
    ("Opponent A has cooperated in every game so far.\n\nCOOPERATE", C, "line"),
    ("COOPERATE\n\nGiven my strategy and A's record, I will not defect.", C, "line"),
    ("**Decision: DEFECT**\n\n- They defected twice.\n- So I won't cooperate.", D, "line"),
    ("I will cooperate with them.\nCOOPERATE\n---", C, "line"),  # a markdown-only line is no line
    ("DEFECT\n\nReasoning...\n\nDEFECT", D, "line"),
    ("DEFECT\n\nI considered COOPERATE, but they defected twice.\n\nDEFECT", D, "line"),
    ("COOPERATE\n\nThey have always cooperated, so this is easy.", C, "line"),
    ("~~DEFECT~~ COOPERATE", C, "word"),
    ("COOPERATE\n\nThey might defect, but my strategy says to cooperate.", C, "line"),
    ("DEFECT\n\nI choose this over cooperating.", D, "line"),
    ("Decision：ＤＥＦＥＣＴ", D, "line"),
    # json: the reply or its one fenced block is an object with a decision field
    ('{"decision": "DEFECT"}', D, "json"),
    ('{"Action": "cooperate", "reason": "rather than trying to defect"}', C, "json"),
    ('```json\n{"decision": "COOPERATE", "reason": "…rather than trying to defect."}\n```', C, "json"),
    ('Here is my answer:\n```\n{"move": "DEFECT", "why": "they never cooperate"}\n```', D, "json"),
    ('{"decision": "DEFECT", "choice": "defect"}', D, "json"),
    ('{\n  "decision": "COOPERATE",\n  "reason": "no reason to defect"\n}', C, "json"),
    ('{"decision": "DEFECT", "Decision": "defect"}', D, "json"),  # a field given twice, agreeing
    # the other move named only to be ruled out, or in the prompt's own words echoed back
    ("COOPERATE\n\nI will not DEFECT against an opponent who never defected against me.", C, "line"),
    ("DEFECT\n\nI won't ever COOPERATE with them again.", D, "line"),
    ("DEFECT\n\nHistory: Round 1 vs Opponent B: You COOPERATE, They DEFECT.", D, "line"),
    ("COOPERATE\n\nChoosing between COOPERATE/DEFECT is easy: they always cooperated.", C, "line"),
    ("DEFECT:\nThe opponent defected last round, so I retaliate.", D, "line"),  # a colon, then why
    # a reasoning model's scratchpad is not the reply
    ("<think>\nFirst instinct:\nDEFECT\nBut they cooperated, so cooperate.\n</think>\n\nCOOPERATE", C, "word"),
    ("<think>\nThey defected.\n</think>\nDEFECT\n\nThey defected, so I defect.", D, "line"),
    # any arrow; invisible format characters
    ("Decision --> COOPERATE", C, "line"),
    ("Final answer ⟶ DEFECT", D, "line"),
    ("Decision ➡️ DEFECT", D, "line"),
    ("Move ==> COOPERATE", C, "line"),
    ("DEFECT\u200b", D, "word"),
    ("\ufeffCOOPERATE", C, "word"),
    ("DEF\xadECT", D, "word"),
]

AMBIGUOUS = [
    "",
    "   \n\n",
    "COOPERATE/DEFECT",
    "cooperate defect",
    "I won't defect.",
    "I will not cooperate with them.",
    "I'd lean towards COOPERATE, but DEFECT is tempting.",
    "Coopérer.",
    "I'm sorry, I can't help with that.",
    "Decision: C",  # C / D count only as the whole reply
    "COOPERATES",
    "Let me think.\nDEFECTED",
    "COOPERATE\n\nOn balance, though:\nDEFECT",  # first and last line disagree
    "Decision (COOPERATE/DEFECT): COOPERATE",
    "Decision: DEFECT, because they defected.",
    "I choose to cooperate.",
    '{"decision": "COOPERATE", "move": "DEFECT"}',  # fields disagree
    '{"decision": "C"}',
    '{"reason": "cooperation pays"}',
    '["DEFECT"]',
    "{" * 100_000,
    '```json\n{"decision": "DEFECT"}\n```\n```json\n{"decision": "COOPERATE"}\n```',
    'COOPERATE\n```json\n{"decision": "DEFECT"}\n```',  # line and json disagree
    "Given my strategy, there is no reason to defect against a consistent cooperator, so I will",
    # answers taken back, questions, trailing off, struck through
    "DEFECT\n\nWait — they cooperated last round. COOPERATE.",
    "DEFECT\n\nActually, I should cooperate: they cooperated last round.",
    "COOPERATE\n\nOn second thought, defecting is safer.",
    "Decision: COOPERATE\n\nCorrection:\nDecision: DEFECT\n\nThey defected twice.",
    "DEFECT?",
    "COOPERATE...",
    "DEFECT…\nunless they cooperate",
    "~~COOPERATE~~",
    "Options:\n- COOPERATE\n- DEFECT",
    "COOPERATE\n\nor maybe defect, I'm not sure.",
    "DEFECT\n\nJust kidding. I cooperate.",
    "COOPERATE\n\nHmm, defecting could pay more.",
    # a field given twice that disagrees (JSON keeps the last one; case differs or not)
    '{"decision": "COOPERATE", "Decision": "DEFECT"}',
    '{"decision": "COOPERATE", "reason": "they defected twice", "decision": "DEFECT"}',
    # a move heading a list of its payoffs is no answer
    "DEFECT:\n- +5 if they cooperate\n- +1 if they defect\n\nThey cooperated, so I'll go with cooperation.",
    # the other move stated, not ruled out or echoed
    "COOPERATE\n\nThey DEFECT every time, so I DEFECT too.",
    "COOPERATE\n\nI will not DEFECT. No wait: DEFECT.",
    "DEFECT\n\nYou COOPERATE, They DEFECT... so COOPERATE it is.",
    # a scratchpad never closed is no reply, and one with nothing after it neither
    "<think>\nThey cooperated, so COOPERATE",
    "<think>\nCOOPERATE\n</think>",
    # the other move offered, or named in a question or a double negative: not ruled out
    "DEFECT\n\nDefect or cooperate? I choose to cooperate.",
    "COOPERATE\n\nShould I cooperate or defect? Defecting is clearly better here.",
    "COOPERATE\n\nThe choice between cooperate or defect is easy here.",
    "COOPERATE\n\nWhy not DEFECT? It pays more.",
    "COOPERATE\n\nThere is no reason not to DEFECT.",
    "COOPERATE\n\nI can't not DEFECT here.",
    "COOPERATE\n\nI will not only DEFECT, I will punish them.",
    "COOPERATE\n\nWhy would I not DEFECT?",
    "Decision ↛ DEFECT",  # an arrow that says "not"
    # any explanation must conclude for its answer: words no list holds can turn it
    "COOPERATE\n\nNah. Round 2 showed me who I'm dealing with.",
    "DEFECT\n\nThe adversary has been nothing but generous. Returning generosity is the decent thing to do.",
    "COOPERATE\n\nI cooperated in rounds 1 and 2 and Opponent C took advantage both times. Enough is enough.",
    "COOPERATE\n\nMy strategy says to cooperate by default. Then again, Opponent H burned me last round.",
    "DEFECT\n\nTit for tat.",  # harmless, but a list cannot tell it from "Nah."
    # prose before a JSON block is reasoning, held as a last line's is
    'Nah. Round 2 showed me who I\'m dealing with.\n```json\n{"decision": "COOPERATE"}\n```',
    # a last line after reasoning that discusses the game but never speaks for it
    "They might DEFECT, or they might COOPERATE; I can't tell.\n\nDEFECT",
    "I could DEFECT.\nCOOPERATE\n---",
    "Opponent V cheated me last round. Time for payback.\n\nCOOPERATE",
    # a contingency: the last line is what it would do, introduced by a condition
    "I'll stick with goodwill this round.\n\n**Contingency (if they betray me next round):**\nDEFECT",
    # a correction needs no move word: withdrawing the answer is enough
    "COOPERATE\n\nSorry, let me reconsider — their last move was a betrayal, so I retaliate.",
    "DEFECT\n\nOn second thought, let's give Opponent R the benefit of the doubt.",
    "DEFECT\n\nOops, I misread the history. My answer is to reciprocate.",
    "COOPERATE\n\nScratch that. Retaliation it is.",
    # the other move chosen in words the old rule let pass: any case, any hyphen, a noun,
    # a synonym, another language
    "DEFECT\n\nThat said, Opponent C cooperated last round, so cooperating is the right call.",
    "DEFECT\n\nBut given that all players are copies of me, I'll cooperate.",
    "DEFECT\n\nI'd rather co\u2011operate with F.",  # a non-breaking hyphen
    "DEFECT\n\nThis is a first encounter; my strategy says to start with cooperation.",
    "COOPERATE\n\nOpponent V defected in round 2, so I must retaliate for the rest of the game.",
    "DEFECT\n\n等等，对手D上一轮其实是合作的，所以我应该合作。",
    "DEFECT\n\nAttendez — l'adversaire E a coopéré au dernier tour. Je coopère donc.",
    # a word of doubt or correction is enough alone: the words that follow may turn the
    # answer without naming the other move (so even a harmless "Actually," costs a follow-up)
    "DEFECT\n\nWait, they cooperated last round.",
    "DEFECT\n\nApologies, that was a mistake. Given their record, the right move is to keep trusting them.",
    "COOPERATE\n\nLet me flip that: they have exploited me twice.",
    "DEFECT\n\nI got that backwards: Opponent C has been fair all along.",
    "COOPERATE\n\nActually, they have always cooperated, so this is easy.",
    # doing what the other did, without naming the move; the answer itself ruled out
    "COOPERATE\n\nOpponent E defected last round, and so will I.",
    "COOPERATE\n\nI would never defect first — but Opponent C already did, so now I will.",
    "COOPERATE\n\nTit-for-tat: their defection last round gets matched this round.",
    "DEFECT\n\nThey have always cooperated with me, so no defection from me today.",
    "COOPERATE\n\nNo cooperation until they earn my trust back.",
    # an explanation in a language the rules do not read cannot vouch for the answer
    "COOPERATE\n\nL'avversario C ha tradito nell'ultimo round, quindi tradisco anch'io.",
    "COOPERATE\n\n상대 B가 지난 라운드에서 배신했으므로 저도 배신합니다.",
    # reasoning that chose the other move outright, then a last line that says the opposite
    "Opponent C has defected twice, so following my strategy I will defect.\n\nDecision: COOPERATE",
    # a counterfactual that argues for the other move
    "DEFECT\n\nCooperating would be better for both of us.",
    "COOPERATE\n\nEven though defecting might pay more today, my strategy is clear.",  # no word against it
    "DEFECT\n\nCooperating would be the smart play here.",
    # an explanation about the game that never speaks for its answer
    "COOPERATE\n\nNope, Opponent C burned me last round. No more Mr. Nice Guy.",
    "DEFECT\n\nOn closer inspection, Opponent B has been fair with me throughout, so I'll return their goodwill.",
    "DEFECT\n\nOpponent C has never defected, and neither will I.",
    # a JSON reason that chooses the other move, a field that contradicts, prose after the block
    '{"decision": "DEFECT", "reason": "Opponent S cooperated last round, so I should cooperate."}',
    '{"decision": "COOPERATE", "final_decision": "DEFECT"}',
    '```json\n{"decision": "DEFECT"}\n```\n\nActually no, I cooperate.',
    # a reply that runs on into an exercise of its own: its last line answers that, not us
    "Based on my strategy, I will cooperate.\n\n### Exercise 2\nOpponent Z defected twice.\n\nDecision: DEFECT",
    "I will cooperate.\n\nUser: and now?\nDecision: DEFECT",
]


@pytest.mark.parametrize(("reply", "action", "rule"), DECISIONS)
def test_parse_decision(reply: str, action: str, rule: str) -> None:
    assert parse_decision(reply) == Reading(action, rule)


@pytest.mark.parametrize("reply", AMBIGUOUS)
def test_ambiguous_decision(reply: str) -> None:
    assert parse_decision(reply) == Reading(None, None)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("DEFECT", Reading(D, "word")),
        ('{"decision": "DEFECT"}', Reading(D, "json")),
        ("COOPERATE\n\nGiven my strategy, I cooperate.\n", Reading(C, "line")),
        # an explanation cut off before it spoke for the answer: asked again
        ("COOPERATE\n\nGiven my strategy, I will", Reading(None, None)),
        # the last line of a cut-off reply does not count
        ("My strategy says to reciprocate, and A cooperated.\nCOOPERATE", Reading(None, None)),
        # nor does a first line that was never finished
        ("Decision: DEFECT", Reading(None, None)),
        ('```json\n{"decision": "COOPERATE", "reason": "they', Reading(None, None)),
        # cut off while it discussed the other move: where it was heading cannot be seen
        (
            "COOPERATE\n\nI've cooperated every round, but they have defected twice, which means my strategy now",
            Reading(None, None),
        ),
    ],
)
def test_cut_off_decision(reply: str, expected: Reading) -> None:
    assert parse_decision(reply, "length") == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # the other move done by someone else, turned down, a noun for what happened, or a
        # counterfactual that does not argue for it: the answer stands
        ("COOPERATE\n\nOpponent C has cooperated every time; there is no reason to defect.", C),
        ("DEFECT\n\nThe opponent has never once cooperated with me.", D),
        ("COOPERATE\n\nThey've never chosen DEFECT, and their cooperation has been steady.", C),
        ("DEFECT\n\nThey exploited me twice. Cooperating again would just reward that.", D),
        ("COOPERATE\n\nI keep the mutual 3/3 rather than trying to defect.", C),
        ("COOPERATE\n\nInstead of defecting for a one-off 5 points, I keep the mutual 3/3.", C),
        ("COOPERATE\n\nI will not defect against a partner who has never defected.", C),
        ("COOPERATE\n\nI choose not to defect.", C),
        ('{"decision": "DEFECT", "reason": "They never cooperate; cooperating would be exploited."}', D),
        ('{"opponent_last_move": "COOPERATE", "decision": "DEFECT"}', D),
        # the explanation names only the answer's own move
        ("COOPERATE\n\nThey have always cooperated, so this is easy.", C),
        # a reply that ran on: its answer, before the exercise it made up, is read
        ("They defected twice, so I defect.\nDecision: DEFECT\n\n### Exercise 2\nWhat would you do?", D),
    ],
)
def test_an_explanation_that_does_not_choose_the_other_move_keeps_the_answer(reply: str, expected: str) -> None:
    assert parse_decision(reply).action == expected


def test_a_reply_full_of_mentions_is_read_in_linear_time() -> None:
    """Each mention looks at the 80 characters before it, not the whole reply, and past 20
    mentions of the other move the answer is not clear anyway (this test took minutes
    when each mention looked at the rest of the reply)."""
    assert parse_decision("COOPERATE\n\n" + "they cooperated, " * 20) == Reading(C, "line")
    assert parse_decision("COOPERATE\n\n" + "they defected, they cooperated, " * 3_000) == Reading(None, None)


def test_a_reply_longer_than_any_decision_is_not_read() -> None:
    assert parse_decision("DEFECT\n\n" + "x" * DECISION_MAX_CHARS) == Reading(None, None)
    assert parse_decision("DEFECT\n\n" + "-" * (DECISION_MAX_CHARS - 100)) == Reading(D, "line")


def test_stop_reason_reads_like_none() -> None:
    reply = "My strategy says to cooperate.\nCOOPERATE"
    assert parse_decision(reply, "stop") == parse_decision(reply) == Reading(C, "line")


def words(n: int, word: str = "w") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def test_strategy_after_marker() -> None:
    reply = "I think cooperation pays.\n\nSTRATEGY: Cooperate unless   the opponent\ndefected."
    assert extract_strategy(reply) == ("Cooperate unless the opponent defected.", [])


def test_strategy_marker_is_case_insensitive() -> None:
    assert extract_strategy("Thinking...\nstrategy: Always defect.") == ("Always defect.", [])


def test_strategy_uses_the_last_marker() -> None:
    reply = "STRATEGY: draft rule\nOn reflection, better:\nStrategy: final rule"
    assert extract_strategy(reply) == ("final rule", ["multiple_markers"])


@pytest.mark.parametrize(
    "marker",
    [
        "**STRATEGY:**",
        "**Strategy**:",
        "## Strategy:",
        "  STRATEGY:",
        "> STRATEGY:",
        "STRATEGY :",
        "- STRATEGY:",
        "* **Strategy:**",
        "2. STRATEGY:",
        "3) Strategy:",
        "Final strategy:",
        "**Final Strategy:**",
        "STRATEGY：",
        "### FINAL STRATEGY：",
        "ＳＴＲＡＴＥＧＹ：",
        "ＦＩＮＡＬ ＳＴＲＡＴＥＧＹ:",
    ],
)
def test_strategy_marker_forms(marker: str) -> None:
    assert extract_strategy(f"Reasoning.\n{marker} Tit for tat.") == ("Tit for tat.", [])


def test_empty_last_marker_passes_to_the_one_before() -> None:
    assert extract_strategy("STRATEGY: Tit for tat.\n\nSTRATEGY:\n") == ("Tit for tat.", ["multiple_markers"])


def test_a_bulleted_last_marker_wins_over_a_heading_before_it():
    reply = "## Strategy:\nLet me think about the payoffs.\n\n- STRATEGY: Always cooperate unless exploited."
    assert extract_strategy(reply) == ("Always cooperate unless exploited.", ["multiple_markers"])


def test_marker_after_a_no_break_space() -> None:
    assert extract_strategy("Reasoning.\n\xa0STRATEGY: Tit for tat.") == ("Tit for tat.", [])


def test_strategy_on_lines_after_marker() -> None:
    assert extract_strategy("STRATEGY:\n\n1. Cooperate.\n2. Punish.") == ("1. Cooperate. 2. Punish.", [])


@pytest.mark.parametrize("reply", ["My STRATEGY: is below.\nCooperate always.", "Strategy\nCooperate always."])
def test_not_a_marker(reply: str) -> None:
    assert extract_strategy(reply) == (" ".join(reply.split()), ["marker_missing"])


def test_strategy_past_100_words_is_kept_and_flagged() -> None:
    assert extract_strategy("STRATEGY: " + words(150)) == (words(150), ["over_limit"])


def test_strategy_past_200_words_is_cut() -> None:
    assert extract_strategy("STRATEGY: " + words(250)) == (words(200), ["over_limit", "truncated"])


def test_exactly_100_words_is_not_flagged() -> None:
    assert extract_strategy("STRATEGY: " + words(100)) == (words(100), [])


def test_no_marker_keeps_the_last_words() -> None:
    reply = words(150, "pre") + "\n" + words(100)
    assert extract_strategy(reply) == (words(100), ["marker_missing"])


def test_short_reply_without_marker() -> None:
    assert extract_strategy("Just cooperate.\n") == ("Just cooperate.", ["marker_missing"])


def test_empty_strategy_after_marker_falls_back() -> None:
    """The last 100 words before it, without the empty marker: a marker alone is no rule."""
    reply = words(120) + "\nSTRATEGY:   \n"
    assert extract_strategy(reply) == (" ".join(words(120).split()[-100:]), ["marker_missing"])


@pytest.mark.parametrize("reply", ["STRATEGY:\n\n", "**STRATEGY:**", "STRATEGY:\nSTRATEGY:"])
def test_a_reply_of_empty_markers_is_a_failed_call(reply: str) -> None:
    """Nothing but the marker: no rule to play, so a failed call (asked again, then carried
    over or the fallback, and flagged), not the word "STRATEGY:" played as a strategy."""
    assert extract_strategy(reply)[0] is None


def test_a_scratchpad_the_chat_template_opened_is_not_the_strategy() -> None:
    """DeepSeek R1's chat template opens `<think>` itself: the reply holds only `</think>`,
    and the draft before it is not the strategy (nor a decision's answer)."""
    reply = (
        "Copies of me.\nSTRATEGY: Always DEFECT.\nWait, cooperation is better.\n</think>\n\nSTRATEGY: Always COOPERATE."
    )
    assert extract_strategy(reply) == ("Always COOPERATE.", [])
    assert parse_decision("They defected. So I defect.\n</think>\nCOOPERATE").action is None
    assert parse_decision("They cooperated.\n</think>\nCOOPERATE").action == "COOPERATE"


@pytest.mark.parametrize(
    "reply, expected",
    [
        (
            "STRATEGY: Always cooperate unless the opponent writes </think> in a message.",
            ("Always cooperate unless the opponent writes </think> in a message.", []),
        ),
        ("STRATEGY: Tit-for-tat.\n</think>", ("Tit-for-tat. </think>", [])),
    ],
)
def test_a_quoted_or_trailing_think_tag_ends_no_scratchpad(reply: str, expected) -> None:
    """Only a `</think>` on a line of its own with a reply after it ends a scratchpad the
    chat template opened; one quoted in a sentence or left at the end ends nothing."""
    assert extract_strategy(reply) == expected
    assert (
        parse_decision('{"reasoning": "They defected; I use no </think> tag", "decision": "DEFECT"}').action == "DEFECT"
    )


def test_long_preamble_before_marker() -> None:
    reply = words(300, "pre") + "\n**STRATEGY:** Cooperate first, then copy the opponent."
    assert extract_strategy(reply) == ("Cooperate first, then copy the opponent.", [])


def test_empty_reply_is_a_failed_call() -> None:
    assert extract_strategy("  \n") == (None, ["marker_missing"])


def test_cut_off_without_marker_is_a_failed_call() -> None:
    assert extract_strategy("Let me weigh the options. Cooperation pays if", "length") == (None, ["marker_missing"])


def test_cut_off_after_marker_is_kept_and_flagged() -> None:
    reply = "Reasoning.\nSTRATEGY: Cooperate first; defect only after"
    assert extract_strategy(reply, "length") == ("Cooperate first; defect only after", ["truncated"])


# -- the hand-labelled corpora (tests/corpora, see docs/parsing.md) ---------------------


@pytest.mark.parametrize("row", DECISION_CORPUS, ids=lambda row: row["style"])
def test_decision_corpus_no_silent_misread(row: dict) -> None:
    """A reply labelled ambiguous reads as ambiguous; a clear one reads as its move or as
    ambiguous (a follow-up), never as the other move."""
    action, rule = parse_decision(row["reply"], row["finish_reason"])
    if row["expected"] == "ambiguous":
        assert (action, rule) == (None, None)
    else:
        assert action in (row["expected"], None)
        assert (action is None) == (rule is None)


def test_decision_corpus_covers_the_styles() -> None:
    styles = Counter(row["style"] for row in DECISION_CORPUS)
    assert len(DECISION_CORPUS) >= 150
    for style in (
        "one_word",
        "answer_first",
        "answer_last",
        "markdown",
        "json",
        "fenced_json",
        "negation",
        "hedge",
        "both_words",
        "cut_off",
        "non_english",
        "empty",
        "refusal",
        "letter",
        "quoted",
        "label",
    ):
        assert styles[style] >= 2, style
    assert {row["expected"] for row in DECISION_CORPUS} == {C, D, "ambiguous"}


def test_decision_corpus_reads_most_clear_answers() -> None:
    """Replies that state the move on a line of its own, as a word or as JSON are read, not
    sent to a follow-up (the share of follow-ups is in docs/parsing.md)."""
    plain = [
        row
        for row in DECISION_CORPUS
        if row["expected"] != "ambiguous"
        and row["style"] in ("one_word", "markdown_word", "quoted", "letter", "label", "json")
    ]
    assert plain and all(parse_decision(row["reply"], row["finish_reason"]).action == row["expected"] for row in plain)


@pytest.mark.parametrize("row", STRATEGY_CORPUS, ids=lambda row: row["style"])
def test_strategy_corpus(row: dict) -> None:
    assert extract_strategy(row["reply"], row["finish_reason"]) == (row["expected_text"], row["expected_flags"])


def test_strategy_corpus_size() -> None:
    assert len(STRATEGY_CORPUS) >= 30


# -- an outside review's corpus (tests/corpora/*_outside.jsonl), labelled by the SPEC's letter


def move_of(label: str) -> str | None:
    return None if label == "ambiguous" else label.split(":")[0]


@pytest.mark.parametrize("row", OUTSIDE_DECISIONS, ids=lambda row: row["id"])
def test_outside_decision_never_the_other_move(row: dict) -> None:
    """A labelled move reads as itself or as ambiguous; a reply labelled ambiguous (where
    the SPEC settles it) reads as ambiguous. Rows the SPEC leaves unclear only must not
    read as the other move."""
    action, rule = parse_decision(row["reply"], row["finish_reason"])
    expected = move_of(row["expected"])
    if expected is None and not row["unclear"]:
        assert (action, rule) == (None, None)
    elif expected is not None:
        assert action in (expected, None)


def test_outside_decisions_read_most_clear_answers() -> None:
    clear = [row for row in OUTSIDE_DECISIONS if row["expected"] != "ambiguous" and not row["unclear"]]
    read = [
        row for row in clear if parse_decision(row["reply"], row["finish_reason"]).action == move_of(row["expected"])
    ]
    assert len(clear) >= 130 and len(read) / len(clear) >= 0.68


@pytest.mark.parametrize("row", OUTSIDE_STRATEGIES, ids=lambda row: row["id"])
def test_outside_strategy(row: dict) -> None:
    assert extract_strategy(row["reply"], row["finish_reason"]) == (row["expected_text"], row["expected_flags"])


def test_a_long_line_of_markdown_stars_is_read_in_linear_time():
    """The marker pattern once backtracked over every split of "* * * …": 2,000 pairs took
    a second of event-loop time, 20,000 would take minutes. Now microseconds (no timing here:
    the old pattern simply does not finish in a test run)."""
    reply = "* " * 20_000 + "\nSTRATEGY: Tit for tat."
    assert extract_strategy(reply) == ("Tit for tat.", [])


# -- a second outside review's corpus (tests/corpora/*_outside2.jsonl), labelled by intent:
# the move a careful reader takes the model to mean, or "ambiguous" when it did not commit


@pytest.mark.parametrize("row", OUTSIDE_DECISIONS_2, ids=lambda row: row["note"][:40])
def test_second_outside_decision_never_the_other_move(row: dict) -> None:
    action, rule = parse_decision(row["reply"], row["finish_reason"])
    if row["expected"] == "ambiguous":
        assert (action, rule) == (None, None)
    else:
        assert action in (row["expected"], None)


def test_second_outside_corpus_reads_its_plain_answers() -> None:
    """Weighted towards hard cases (corrections, other languages, markup, cut-offs), so
    most of it costs a follow-up; the floor catches a reader made stricter by accident."""
    clear = [row for row in OUTSIDE_DECISIONS_2 if row["expected"] != "ambiguous"]
    read = [row for row in clear if parse_decision(row["reply"], row["finish_reason"]).action == row["expected"]]
    assert len(clear) >= 290 and len(read) >= 60


@pytest.mark.parametrize("row", OUTSIDE_STRATEGIES_2, ids=lambda row: row["note"][:40])
def test_second_outside_strategy(row: dict) -> None:
    assert extract_strategy(row["reply"], row["finish_reason"]) == (row["expected_text"], row["expected_flags"])


def test_a_scratchpad_draft_is_not_the_strategy() -> None:
    reply = "<think>\nSTRATEGY: Always defect.\nNo: copies of me.\n</think>\n\nSTRATEGY: Always cooperate."
    assert extract_strategy(reply) == ("Always cooperate.", [])
    assert extract_strategy("<think>\nDraft:\nSTRATEGY: Always defect. But wait", "length") == (
        None,
        ["marker_missing"],
    )


RED_TEAMS = [
    *REDTEAM_DECISIONS,
    *REDTEAM_DECISIONS_2,
    *REDTEAM_DECISIONS_3,
    *REDTEAM_DECISIONS_4,
    *REDTEAM_DECISIONS_5,
    *REDTEAM_DECISIONS_6,
    *REDTEAM_DECISIONS_7,
    *REDTEAM_DECISIONS_8,
]


@pytest.mark.parametrize("row", RED_TEAMS, ids=lambda row: row["note"][:40])
def test_red_team_decision_never_the_other_move(row: dict) -> None:
    """Realistic replies written to break the reader: none is read as the other move, and
    every one labelled ambiguous is ambiguous — but the few listed as known, each with why
    (docs/parsing.md)."""
    if "known" in row:
        return
    action, rule = parse_decision(row["reply"], row["finish_reason"])
    if row["expected"] != "ambiguous":
        assert action in (row["expected"], None)
    else:
        assert (action, rule) == (None, None)


def test_red_team_known_misses_are_few_and_still_missed() -> None:
    """A known miss the rules come to read right should lose its mark."""
    known = [row for row in RED_TEAMS if "known" in row]
    assert len(known) <= 7
    for row in known:
        assert parse_decision(row["reply"], row["finish_reason"]).action not in (None, row["expected"])


def test_ordinary_traffic_is_never_misread_and_mostly_read_at_once() -> None:
    """A sample of what models typically return for the prompt: none read as the other move,
    and at least 68% read without a follow-up (70% when written)."""
    rows = (
        ORDINARY_DECISIONS + ORDINARY_DECISIONS_2 + ORDINARY_DECISIONS_3 + ORDINARY_DECISIONS_4 + ORDINARY_DECISIONS_5
    )
    readings = [parse_decision(row["reply"], row["finish_reason"]).action for row in rows]
    expected = [row["expected"] for row in rows]
    assert len(readings) >= 250 and all(a in (None, e) for a, e in zip(readings, expected, strict=True))
    assert sum(a == e for a, e in zip(readings, expected, strict=True)) >= 0.68 * len(readings)


def test_wordy_model_replies_are_never_misread() -> None:
    """The eighth red team's replies as cheap models write them for the real prompt, weighted
    to wordy styles (a reason before or after the move, markdown, JSON with reasons, a
    scratchpad): none read as the other move, none ambiguous read as a move, and at least
    40% read at once (42% of its 160 rows when written, 67 of the 152 clear ones; the rest
    cost a follow-up, never a misread)."""
    readings = [parse_decision(row["reply"], row["finish_reason"]).action for row in ORDINARY_DECISIONS_6]
    expected = [row["expected"] for row in ORDINARY_DECISIONS_6]
    assert all(a in (None, e) for a, e in zip(readings, expected, strict=True))
    assert sum(a == e for a, e in zip(readings, expected, strict=True)) >= 0.40 * len(readings)


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("<think>\nI should DEFECT since they defected.\n</think>\n\nCOOPERATE", None),
        ("<think>\nAlways cooperate. But wait... no, always means always. COOPERATE.\n</think>\nDEFECT", None),
        ("<think>\nThey cooperated last round, so I cooperate.\n</think>\nCOOPERATE", "COOPERATE"),
        ("<think>\nCould I defect? No.\n</think>\nCOOPERATE", "COOPERATE"),
        # the conclusions reasoning models write, against the answer after them
        ("<think>Tit-for-tat; they cooperated. Answer: COOPERATE</think>\nDEFECT", None),
        ("<think>Tit-for-tat; they cooperated.\n**Decision: COOPERATE**</think>\nDEFECT", None),
        ("<think>Tit-for-tat; they cooperated. Therefore COOPERATE.</think>\nDEFECT", None),
        ("<think>Tit-for-tat; they cooperated → COOPERATE.</think>\nDEFECT", None),
        ("<think>Strategy says always cooperate. So: COOPERATE.</think>\n\nDEFECT", None),
        ("<think>They cooperated. I will cooperate. Let me make sure to output just one word.</think>\nDEFECT", None),
        # a move named in a record, a plan, someone's wish or the output's format is no conclusion
        ("<think>Generous tit-for-tat. Opponent E's last move: DEFECT.</think>\nCOOPERATE", "COOPERATE"),
        ("<think>Forgive once, they defected once.\nIf they defect again: DEFECT.</think>\nCOOPERATE", "COOPERATE"),
        (
            "<think>Always defect. Even if they cooperate, I defect. They'd prefer I cooperate.</think>\nDEFECT",
            "DEFECT",
        ),
        ("<think>I'll cooperate. Output format: a single word, e.g. DEFECT.</think>\nCOOPERATE", "COOPERATE"),
    ],
)
def test_a_scratchpad_that_chose_the_other_move_contradicts_the_answer(reply: str, expected) -> None:
    """A reasoning model's scratchpad that concludes for the other move (its last sentence
    with a move is that move, or the speaker chooses it there) contradicts the answer after
    it, as the same reasoning written outside a scratchpad would; one that concludes for the
    answer, or weighs the other move only, does not."""
    assert parse_decision(reply, "stop").action == expected


def _strategy_words(text: str | None) -> str | None:
    """A strategy as a sub model would play it: markdown, quotes, bullets and case aside."""
    if text is None:
        return None
    text = re.sub(r'[*_`>#"]', "", text.replace("\u200b", "").replace("\ufeff", ""))
    return " ".join(re.sub(r"^\s*[-•]\s*", "", text).split()).strip(" .").lower()


def test_red_team_strategies_as_meant_but_the_known_gaps() -> None:
    """Every reply of the red team's corpus is extracted as the strategy meant, but the ones
    marked `known` (SPEC §4 takes the text after the last marker line, so a rejected
    alternative or an old rule quoted after the chosen one is played, flagged
    `multiple_markers`; docs/parsing.md lists the kinds). A gap closed must lose its mark,
    and the wrong-strategy gaps may not grow."""
    for row in REDTEAM_STRATEGIES:
        got = _strategy_words(extract_strategy(row["reply"], row["finish_reason"])[0])
        assert (got == _strategy_words(row["expected_text"])) != ("known" in row), row["note"]
    assert sum(row.get("known", "").startswith("wrong strategy") for row in REDTEAM_STRATEGIES) <= 12
