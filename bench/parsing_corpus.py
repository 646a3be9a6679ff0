"""The hand-labelled decision corpus through the parser: misreads and the share of replies
sent to a follow-up, overall and per style; then the first outside review's corpus, labelled
by the SPEC's letter, and the second's, labelled by intent. Prints figures; asserts nothing.

    .venv/bin/python bench/parsing_corpus.py
"""

import json
from collections import Counter
from pathlib import Path

from engine.parsing import parse_decision

CORPORA = Path(__file__).parent.parent / "tests" / "corpora"
CORPUS = CORPORA / "decisions.jsonl"
OUTSIDE = CORPORA / "decisions_outside.jsonl"
OUTSIDE_2 = CORPORA / "decisions_outside2.jsonl"
REDTEAM = CORPORA / "decisions_redteam.jsonl"
REDTEAM_2 = CORPORA / "decisions_redteam2.jsonl"
REDTEAM_3 = CORPORA / "decisions_redteam3_attack.jsonl"
ORDINARY = CORPORA / "decisions_redteam3_ordinary.jsonl"
REDTEAM_4 = CORPORA / "decisions_redteam4_attack.jsonl"
ORDINARY_2 = CORPORA / "decisions_redteam4_ordinary.jsonl"
REDTEAM_5 = CORPORA / "decisions_redteam5_attack.jsonl"
ORDINARY_3 = CORPORA / "decisions_redteam5_ordinary.jsonl"
REDTEAM_6 = CORPORA / "decisions_redteam6_attack.jsonl"
ORDINARY_4 = CORPORA / "decisions_redteam6_ordinary.jsonl"
REDTEAM_7 = CORPORA / "decisions_redteam7_attack.jsonl"
ORDINARY_5 = CORPORA / "decisions_redteam7_ordinary.jsonl"
REDTEAM_8 = CORPORA / "decisions_redteam8_attack.jsonl"
ORDINARY_6 = CORPORA / "decisions_redteam8_ordinary.jsonl"


def main() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    total, follow_ups, misreads, rules = Counter(), Counter(), 0, Counter()
    for row in rows:
        action, rule = parse_decision(row["reply"], row["finish_reason"])
        total[row["style"]] += 1
        rules[rule or "follow-up"] += 1
        if action is None:
            follow_ups[row["style"]] += 1
        elif action != row["expected"]:
            misreads += 1
    clear = sum(row["expected"] != "ambiguous" for row in rows)
    clear_read = sum(parse_decision(r["reply"], r["finish_reason"]).action == r["expected"] for r in rows)
    print(f"replies {len(rows)} (clear {clear}, ambiguous {len(rows) - clear}); silent misreads {misreads}")
    print(
        f"sent to a follow-up: {sum(follow_ups.values())} of {len(rows)} "
        f"({sum(follow_ups.values()) / len(rows):.0%}); clear replies read at once {clear_read} of {clear} "
        f"({clear_read / clear:.0%})"
    )
    print("by rule: " + ", ".join(f"{rule} {n}" for rule, n in rules.most_common()))
    print(f"{'style':14} {'replies':>7} {'follow-up':>9}")
    for style, n in sorted(total.items()):
        print(f"{style:14} {n:7} {follow_ups[style]:9}")
    outside()
    by_intent("second outside corpus", OUTSIDE_2)
    by_intent("red team's corpus", REDTEAM)
    by_intent("second red team's corpus", REDTEAM_2)
    by_intent("third red team's corpus", REDTEAM_3)
    by_intent("ordinary traffic (third red team)", ORDINARY)
    by_intent("fourth red team's corpus", REDTEAM_4)
    by_intent("ordinary traffic (fourth red team)", ORDINARY_2)
    by_intent("fifth red team's corpus", REDTEAM_5)
    by_intent("ordinary traffic (fifth red team)", ORDINARY_3)
    by_intent("sixth red team's corpus", REDTEAM_6)
    by_intent("ordinary traffic (sixth red team)", ORDINARY_4)
    by_intent("seventh red team's corpus", REDTEAM_7)
    by_intent("ordinary traffic (seventh red team)", ORDINARY_5)
    by_intent("eighth red team's corpus", REDTEAM_8)
    by_intent("wordy model replies (eighth red team)", ORDINARY_6)


def outside() -> None:
    rows = [json.loads(line) for line in OUTSIDE.read_text(encoding="utf-8").splitlines() if line.strip()]
    settled = [row for row in rows if not row["unclear"]]
    opposite = ambiguous_read = clear = clear_read = 0
    for row in rows:
        action = parse_decision(row["reply"], row["finish_reason"]).action
        expected = None if row["expected"] == "ambiguous" else row["expected"].split(":")[0]
        opposite += bool(expected and action and action != expected)
        if row["unclear"]:
            continue
        ambiguous_read += bool(expected is None and action)
        clear += expected is not None
        clear_read += bool(expected and action == expected)
    print(
        f"outside review's corpus: {len(rows)} replies ({len(rows) - len(settled)} the SPEC leaves unclear); "
        f"read as the other move {opposite}; labelled ambiguous but read {ambiguous_read}; "
        f"clear replies read at once {clear_read} of {clear} ({clear_read / clear:.0%})"
    )


def by_intent(name: str, path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    readings = [parse_decision(row["reply"], row["finish_reason"]).action for row in rows]
    clear = [(row, action) for row, action in zip(rows, readings, strict=True) if row["expected"] != "ambiguous"]
    opposite = sum(action is not None and action != row["expected"] for row, action in clear)
    ambiguous_read = sum(a is not None for row, a in zip(rows, readings, strict=True) if row["expected"] == "ambiguous")
    read = sum(action == row["expected"] for row, action in clear)
    print(
        f"{name} (by intent): {len(rows)} replies; read as the other move {opposite}; "
        f"labelled ambiguous but read {ambiguous_read}; clear replies read at once {read} of {len(clear)} "
        f"({read / len(clear):.0%})"
    )


if __name__ == "__main__":
    main()
