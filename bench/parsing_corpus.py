"""The hand-labelled decision corpus through the parser: misreads and the share of replies
sent to a follow-up, overall and per style. Prints figures; asserts nothing.

    .venv/bin/python bench/parsing_corpus.py
"""

import json
from collections import Counter
from pathlib import Path

from engine.parsing import parse_decision

CORPUS = Path(__file__).parent.parent / "tests" / "corpora" / "decisions.jsonl"


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


if __name__ == "__main__":
    main()
