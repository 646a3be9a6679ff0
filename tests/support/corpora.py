"""The hand-labelled corpora of realistic model replies in tests/corpora (docs/parsing.md),
one JSON object a line."""

import json
from pathlib import Path

CORPORA = Path(__file__).resolve().parents[1] / "corpora"


def corpus(name: str) -> list[dict]:
    with open(CORPORA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


DECISION_CORPUS = corpus("decisions.jsonl")
STRATEGY_CORPUS = corpus("strategies.jsonl")
# An outside review's corpus: labels by the SPEC's letter ("DEFECT:line", "ambiguous"),
# `unclear` where the SPEC does not settle the case (docs/parsing.md).
OUTSIDE_DECISIONS = corpus("decisions_outside.jsonl")
OUTSIDE_STRATEGIES = corpus("strategies_outside.jsonl")
# A second outside review's corpus, labelled by intent: "COOPERATE", "DEFECT" or "ambiguous".
OUTSIDE_DECISIONS_2 = corpus("decisions_outside2.jsonl")
OUTSIDE_STRATEGIES_2 = corpus("strategies_outside2.jsonl")
# A red team's corpus written against the reader of the second review's fixes, by intent;
# `known`: a reply the rules still read wrong (as a move, or as the other move), and why.
REDTEAM_DECISIONS = corpus("decisions_redteam.jsonl")
# A second red team's, against the reader that asks an explanation to vouch for its answer.
REDTEAM_DECISIONS_2 = corpus("decisions_redteam2.jsonl")
# A third red team's: replies written against the reader that asks for a vouch, and a sample
# of ordinary traffic (bare words, labels, a word with a reason, JSON, prose) by intent.
REDTEAM_DECISIONS_3 = corpus("decisions_redteam3_attack.jsonl")
ORDINARY_DECISIONS = corpus("decisions_redteam3_ordinary.jsonl")
# A fourth red team's, against the reader that asks every explanation to conclude for its answer.
REDTEAM_DECISIONS_4 = corpus("decisions_redteam4_attack.jsonl")
ORDINARY_DECISIONS_2 = corpus("decisions_redteam4_ordinary.jsonl")
# A fifth's, against the reader that asks the speaker to choose the move in so many words.
REDTEAM_DECISIONS_5 = corpus("decisions_redteam5_attack.jsonl")
ORDINARY_DECISIONS_3 = corpus("decisions_redteam5_ordinary.jsonl")
# A sixth's, against the reader that asks the chosen move to end its clause.
REDTEAM_DECISIONS_6 = corpus("decisions_redteam6_attack.jsonl")
ORDINARY_DECISIONS_4 = corpus("decisions_redteam6_ordinary.jsonl")
# A seventh's, against the reader that frames no choice away ("Never again will I…").
REDTEAM_DECISIONS_7 = corpus("decisions_redteam7_attack.jsonl")
ORDINARY_DECISIONS_5 = corpus("decisions_redteam7_ordinary.jsonl")
# An eighth's, against the reader of the seventh's fixes: replies as real cheap models write
# them for the real prompt (reasoning models' scratchpads among them), and tricky ones.
REDTEAM_DECISIONS_8 = corpus("decisions_redteam8_attack.jsonl")
ORDINARY_DECISIONS_6 = corpus("decisions_redteam8_ordinary.jsonl")
# A red team's strategy replies (150, as models of 2025-26 write them for the real prompt),
# labelled with the strategy meant; `known`: where extraction (SPEC §4's letter) differs, and how.
REDTEAM_STRATEGIES = corpus("strategies_redteam.jsonl")
