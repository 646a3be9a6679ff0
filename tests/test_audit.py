import json
import shutil
import zlib
from pathlib import Path

import anyio
import pytest

from acausal_tui.cli import main
from engine.audit import audit_experiment, printable, reread
from engine.models import CallRecord, Usage
from engine.providers.base import ChatRequest, Completion
from engine.runner import run_experiment
from tests.support.experiment_files import only_experiment
from tests.support.fakes import FakeProvider

OLD_RULES = Path(__file__).parent / "fixtures" / "audit" / "exp_old_rules"


def call(reply: str | None, finish_reason: str | None = None) -> CallRecord:
    return CallRecord(
        key="decision/r1/g1/p1/t0",
        model="m",
        attempts=1,
        reply=reply,
        usage=Usage(),
        cost=0.0,
        cost_is_estimate=False,
        latency_s=0.0,
        finish_reason=finish_reason,
    )


def test_old_rules_experiment_lists_every_flipped_move() -> None:
    """The fixture was recorded with the old "last line / whole reply" rule: each reply whose
    first line is the answer and whose prose negates the other word was flipped."""
    audit = audit_experiment(OLD_RULES)
    assert audit.exit_code == 1
    assert audit.decisions == 36 and audit.moves_without_calls == 0
    listed = {(d.game_id, d.player): d for d in audit.disagreements}
    for d in audit.disagreements:
        first_line = d.current.reply.splitlines()[0]
        if d.current.action is None:  # "I won't defect." was recorded as DEFECT
            assert (d.current.rule, d.recorded, d.current.reply) == ("unasked", "DEFECT", "I won't defect.")
        else:
            assert d.current.action != d.recorded and not d.recorded_fallback
            assert d.current.action in first_line or d.current.rule == "json"
    assert listed[("r1_g4", 1)].recorded == "DEFECT"
    assert listed[("r1_g4", 1)].current.reply.startswith("COOPERATE\n\nGiven my strategy")
    assert listed[("r1_g1", 1)].recorded == "COOPERATE" and listed[("r1_g1", 1)].current.action == "DEFECT"
    flipped = sum(d.current.action is not None for d in audit.disagreements)
    assert (flipped, len(audit.disagreements)) == (13, 16)
    assert audit.recorded_fallbacks == audit.rules["fallback"] == 5


def test_cli_audit_prints_the_flipped_moves_safely(capsys) -> None:
    assert main(["audit", str(OLD_RULES)]) == 1
    out = capsys.readouterr().out
    assert "made before replies' messages and finish_reason were logged" in out
    assert "r1_g4 player 1 (agent 1): recorded DEFECT; the current rules read COOPERATE (line)" in out
    assert "    | COOPERATE\n" in out
    assert "\\x1b[31m I will not defect." in out and "\x1b" not in out
    assert "disagreements: 16 recorded moves the current rules do not read (13 read as the other move)" in out


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_cli_audit_bad_directory_is_one_line(tmp_path: Path, capsys, make: str) -> None:
    target = tmp_path / "exp"
    if make == "file":
        target.write_text("x")
    elif make == "empty":
        target.mkdir()
    assert main(["audit", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("acausal-tui: error: ")


def test_a_changed_record_is_flagged(tmp_path: Path) -> None:
    """A recorded move edited after the fact disagrees; an unfinished round (no summary, no
    games file) leaves its logged decisions unmatched, not missing evidence."""
    copy = tmp_path / "exp"
    shutil.copytree(OLD_RULES, copy)
    games_file = copy / "rounds" / "games_r1.json"
    games = json.loads(games_file.read_text())
    # r1_g2 player 1 was a fallback (ambiguous after 3 tries): pretend it was counted as a choice
    assert games[1]["game_id"] == "r1_g2" and games[1]["player1_fallback"] == "ambiguous reply after 3 tries"
    games[1]["player1_fallback"] = None
    games_file.write_text(json.dumps(games))
    (copy / "rounds" / "games_r3.json").unlink()
    (copy / "rounds" / "summary_r3.json").unlink()
    result = json.loads((copy / "experiment_results.json").read_text())  # as if aborted in round 3
    result.update(status="aborted", total_rounds=2, round_summaries=result["round_summaries"][:2])
    (copy / "experiment_results.json").write_text(json.dumps(result))
    audit = audit_experiment(copy)
    assert audit.calls_without_moves == 12 and audit.missing == []
    assert ("r1_g2", 1) in {(d.game_id, d.player) for d in audit.disagreements}
    assert any("a fallback, not a choice" in line for line in audit.lines())


def test_unreadable_parts_are_noted_and_the_rest_audited(tmp_path: Path, capsys) -> None:
    copy = tmp_path / "exp"
    shutil.copytree(OLD_RULES, copy)
    (copy / "rounds" / "games_r2.json").write_text("[{not json")
    with open(copy / "calls.jsonl", "a") as calls:
        calls.write('{"key": "decision/r3/g1/p1/t0", "repl')  # a torn last line
    assert main(["audit", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "note: unreadable: games_r2.json" in out
    assert "note: calls.jsonl: 1 unreadable lines skipped" in out
    assert "INCOMPLETE: round files that cannot be read: games_r2.json (12 logged decisions in them not checked)" in out
    assert "no round file holds" not in out
    assert "decisions: 24 " in out


class StyledProvider(FakeProvider):
    """Decision replies in several styles, some cut off at max_tokens."""

    STYLES = [
        ("COOPERATE\n\nGiven my strategy, I will not defect.", "stop"),
        ("Maybe COOPERATE, maybe DEFECT.", "stop"),
        ('```json\n{"decision": "DEFECT", "reason": "no reason to cooperate"}\n```', "stop"),
        ("Given the history there is no reason to defect, so I will", "length"),
        ("Decision: DEFECT\n\nThey defected and I won't cooperate with", "length"),
        ("Coopérer.", "stop"),
    ]

    def __init__(self) -> None:
        super().__init__(lambda request: "")
        self.count = 0

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if request.key.startswith("strategy/"):
            return Completion(text="Reasoning.\nSTRATEGY: cooperate with everyone", finish_reason="stop")
        self.count += 1
        return Completion(text=self.reply_to(request.key)[0], finish_reason=self.reply_to(request.key)[1])

    @classmethod
    def reply_to(cls, key: str) -> tuple[str, str]:
        decision, attempt = key.rsplit("/", 1)
        index = zlib.crc32(decision.encode()) % len(cls.STYLES)
        if attempt == "t0":
            return cls.STYLES[index]
        return ("DEFECT", "stop") if index % 2 else ("I'd rather not say.", "stop")


async def test_a_run_with_the_current_rules_audits_clean(make_config) -> None:
    config = make_config(agents=4, rounds=3)
    provider = StyledProvider()
    await run_experiment(config, provider=provider)
    audit = await anyio.to_thread.run_sync(audit_experiment, only_experiment(Path(config.results_dir)))
    assert audit.exit_code == 0, audit.lines()
    assert audit.decisions == 6 * 2 * 3  # 6 games of 2 moves in each of 3 rounds
    assert audit.calls == provider.count
    cut = sum(provider.reply_to(r.key)[1] == "length" for r in provider.requests if r.key.startswith("decision/"))
    assert audit.cut_offs == cut > 0
    assert audit.rules["follow_up"] > 0 and audit.rules["line"] > 0 and audit.rules["json"] > 0, audit.rules
    assert sum(audit.rules.values()) == audit.decisions and audit.rules["unasked"] == 0


@pytest.mark.parametrize(
    ("calls", "action", "rule"),
    [
        ([call("DEFECT")], "DEFECT", "word"),
        ([call("Hmm."), call("COOPERATE")], "COOPERATE", "follow_up"),
        ([call("Hmm."), call("Hmm."), call("Hmm.")], None, "fallback"),
        ([call("Hmm."), call(None)], None, "fallback"),
        ([call("I won't defect.")], None, "unasked"),
        ([call("Opponent cooperated.\nCOOPERATE")], "COOPERATE", "line"),
        ([call("Opponent cooperated.\nCOOPERATE", "length")], None, "unasked"),
    ],
)
def test_reread(calls: list[CallRecord], action: str | None, rule: str) -> None:
    current = reread(calls)
    assert (current.action, current.rule) == (action, rule)


def test_printable_escapes_control_characters() -> None:
    assert printable("a\x1b[2Jb\nc\td\x9be\u202ef\x07") == "a\\x1b[2Jb\nc\\x09d\\x9be\\u202ef\\x07"
    assert printable("Coopérer — 合作 ✓") == "Coopérer — 合作 ✓"


async def clean_experiment(make_config) -> Path:
    config = make_config(agents=4, rounds=3)
    await run_experiment(config, provider=StyledProvider())
    directory = only_experiment(Path(config.results_dir))
    assert (await anyio.to_thread.run_sync(audit_experiment, directory)).exit_code == 0
    return directory


def cut(path: Path, size: int) -> None:
    with open(path, "r+b") as file:
        file.truncate(size)


@pytest.mark.parametrize("damage", ["truncated", "missing", "round_gone"])
async def test_an_unreadable_round_file_makes_the_audit_incomplete(make_config, capsys, damage) -> None:
    """'round_gone': all of round 2's files deleted from a completed experiment; the audit once
    called its decisions "an unfinished round" and found the experiment clean."""
    directory = await clean_experiment(make_config)
    games = directory / "rounds" / "games_r2.json"
    if damage == "missing":
        games.unlink()
    elif damage == "round_gone":
        for path in (directory / "rounds").glob("*_r2.json"):
            path.unlink()
    else:
        cut(games, 500)

    assert await anyio.to_thread.run_sync(main, ["audit", str(directory)]) == 1

    out = capsys.readouterr().out
    assert "INCOMPLETE: round files that cannot be read: games_r2.json (12 logged decisions in them not checked)" in out
    assert "disagreements: none among the 24 moves checked; the audit is incomplete" in out
    assert "every recorded move is what the current rules read" not in out
    assert "unfinished round" not in out


async def test_missing_logged_calls_make_the_audit_incomplete(make_config, capsys) -> None:
    directory = await clean_experiment(make_config)
    cut(directory / "calls.jsonl", 300)

    assert await anyio.to_thread.run_sync(main, ["audit", str(directory)]) == 1

    out = capsys.readouterr().out
    assert "decisions: 0 " in out
    assert "INCOMPLETE: model moves without a logged decision call (not checked): 36" in out
    assert "disagreements: none among the 0 moves checked; the audit is incomplete" in out


async def test_a_lost_follow_up_record_is_missing_evidence_not_a_disagreement(make_config, capsys) -> None:
    """A recorded follow_up move whose follow-up call the log lost (a cut calls.jsonl) was
    reported as the rules' disagreement ("would ask a follow-up"): it is evidence missing."""
    directory = await clean_experiment(make_config)
    calls = directory / "calls.jsonl"
    lines = calls.read_bytes().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    follow_up = next(  # a decision read at its first follow-up
        i
        for i, call in enumerate(records)
        if call["key"].startswith("decision/") and call["key"].endswith("/t1") and call["reply"] == "DEFECT"
    )
    calls.write_bytes(b"".join(lines[:follow_up] + lines[follow_up + 1 :]))

    assert await anyio.to_thread.run_sync(main, ["audit", str(directory)]) == 1

    out = capsys.readouterr().out
    assert "INCOMPLETE: moves recorded after a follow-up that calls.jsonl does not hold (not checked): 1" in out
    assert "the audit is incomplete" in out and "recorded moves the current rules do not read" not in out


async def test_a_logged_follow_up_the_rules_no_longer_read_is_a_disagreement(make_config, capsys) -> None:
    """The follow-up is in the log but its reply no longer reads: the rules' doing, so a
    disagreement with the reply shown (not evidence missing, which would hide a regression)."""
    directory = await clean_experiment(make_config)
    calls = directory / "calls.jsonl"
    records = [json.loads(line) for line in calls.read_bytes().splitlines()]
    follow_up = next(
        call
        for call in records
        if call["key"].startswith("decision/") and call["key"].endswith("/t1") and call["reply"] == "DEFECT"
    )
    follow_up["reply"] = "Let me think about it once more."
    calls.write_text("".join(json.dumps(call) + "\n" for call in records))

    assert await anyio.to_thread.run_sync(main, ["audit", str(directory)]) == 1

    out = capsys.readouterr().out
    assert "recorded moves the current rules do not read" in out and "Let me think about it once more." in out
    assert "calls.jsonl does not hold" not in out
