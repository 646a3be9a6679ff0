"""Same seed, same records: a fixed experiment writes exactly the committed golden records."""

import json
from pathlib import Path

from tests.support.golden import GOLDEN, encode, run_golden


def test_a_fixed_seed_writes_the_committed_records(tmp_path: Path):
    """Round files and the call log (clock times and durations aside), byte for byte. A
    refactor of the runner must keep this green; an intended change regenerates the
    fixture (`python -m tests.support.golden`) and says why."""
    assert encode(run_golden(tmp_path)) == GOLDEN.read_bytes()


def test_the_golden_records_include_follow_up_turns():
    """So the comparison above also pins the follow-up path, not only plain replies."""
    golden = json.loads(GOLDEN.read_text())
    rules = {g[f"player{p}_parse_rule"] for r in (1, 2, 3) for g in golden[f"games_r{r}"] for p in (1, 2)}
    assert {"word", "follow_up"} <= rules
    assert any("/t1" in call["key"] for call in golden["calls"])
