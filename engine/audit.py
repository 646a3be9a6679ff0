"""Audit a finished experiment: re-read every logged decision reply with the current parsing
rules and list the moves whose recorded action the current rules do not read; say when
evidence is missing (an unreadable round file, a model move without its logged call)."""

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from engine.errors import AuditError
from engine.loading import rounds_due
from engine.models import Action, CallRecord, GameResult
from engine.parsing import CUT_OFF, parse_decision
from engine.store import LoadedExperiment, load_experiment, read_jsonl

TRIES = 3  # the first ask and up to 2 follow-up turns (SPEC §5.2)
MAX_REPLY_CHARS = 600  # of a reply shown under a disagreement
_DECISION_KEY = re.compile(r"^decision/r(\d+)/g(\d+)/p([12])/t(\d+)$")
# Control characters (C0 but newline, DEL, C1), bidirectional overrides and line separators:
# printed as escapes, so a reply can neither drive the terminal nor disguise itself.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def printable(text: str) -> str:
    """`text` with control characters replaced by visible escapes (`\\x1b`, `\\u202e`)."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


@dataclass
class Reread:
    """What the current rules make of one decision's logged calls."""

    action: Action | None
    rule: str  # word | line | json | follow_up | fallback | unasked
    reply: str  # the reply that decided, or the last one read
    follow_ups: int  # follow-up calls that were logged


@dataclass
class Disagreement:
    game_id: str
    player: int
    agent: int
    recorded: Action
    recorded_fallback: bool
    current: Reread

    def describe(self) -> str:
        recorded = f"a fallback {self.recorded}" if self.recorded_fallback else self.recorded
        current = self.current
        if current.action is not None:
            now = f"the current rules read {current.action} ({current.rule})"
        elif current.rule == "unasked":
            now = "the current rules read nothing and would ask a follow-up"
        else:
            now = "the current rules read nothing: a fallback, not a choice"
        return f"{self.game_id} player {self.player} (agent {self.agent}): recorded {recorded}; {now}"


@dataclass
class Audit:
    directory: Path
    decisions: int = 0  # decisions with logged calls that a round file records
    calls: int = 0  # decision calls logged
    failed_calls: int = 0
    cut_offs: int = 0  # replies with finish_reason "length"
    follow_up_calls: int = 0
    rules: Counter[str] = field(default_factory=Counter)  # current reading of each decision
    recorded_rules: Counter[str] = field(default_factory=Counter)
    recorded_fallbacks: int = 0
    moves_without_calls: int = 0  # LLM moves with no logged decision call
    calls_without_moves: int = 0  # decisions logged for games of a round not saved (unfinished)
    unreadable_rounds: list[str] = field(default_factory=list)  # games files of saved rounds, unreadable
    unchecked_calls: int = 0  # decisions logged for games of those rounds
    lost_follow_ups: int = 0  # moves recorded after a follow-up the log no longer holds (not checked)
    disagreements: list[Disagreement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """What kept the audit from checking every recorded model move; empty when complete."""
        out = []
        if self.unreadable_rounds:
            out.append(
                f"round files that cannot be read: {', '.join(self.unreadable_rounds)} "
                f"({self.unchecked_calls} logged decisions in them not checked)"
            )
        if self.moves_without_calls:
            out.append(f"model moves without a logged decision call (not checked): {self.moves_without_calls}")
        if self.lost_follow_ups:
            out.append(
                f"moves recorded after a follow-up that calls.jsonl does not hold (not checked): {self.lost_follow_ups}"
            )
        return out

    @property
    def exit_code(self) -> int:
        """1 when a move disagrees or the audit is incomplete, else 0."""
        return 1 if self.disagreements or self.missing else 0

    def lines(self) -> list[str]:
        """The report, safe to print: reply text has its control characters escaped."""
        out = [f"audit of {printable(str(self.directory))}"]
        out += [f"note: {printable(note)}" for note in self.notes]
        out.append(f"decisions: {self.decisions} ({self.calls} decision calls, {self.failed_calls} failed)")
        read = ", ".join(f"{rule} {self.rules[rule]}" for rule in ("word", "line", "json", "follow_up"))
        out.append(
            f"read by the current rules: {read}; fallback {self.rules['fallback']}; "
            f"would need a follow-up never asked {self.rules['unasked']}"
        )
        if self.recorded_rules:
            out.append("recorded parse rules: " + ", ".join(f"{r} {n}" for r, n in sorted(self.recorded_rules.items())))
        out.append(f"follow-up calls logged: {self.follow_up_calls}")
        out.append(f"cut off (finish_reason length): {self.cut_offs}")
        out.append(f"fallbacks recorded: {self.recorded_fallbacks}")
        if self.calls_without_moves:
            out.append(
                f"logged decisions of games no round file holds (an unfinished round): {self.calls_without_moves}"
            )
        missing = self.missing
        out += [f"INCOMPLETE: {line}" for line in missing]
        if not self.disagreements:
            if missing:
                out.append(f"disagreements: none among the {self.decisions} moves checked; the audit is incomplete")
            else:
                out.append("disagreements: none — every recorded move is what the current rules read")
            return out
        flipped = sum(d.current.action is not None and not d.recorded_fallback for d in self.disagreements)
        out.append(
            f"disagreements: {len(self.disagreements)} recorded moves the current rules do not read "
            f"({flipped} read as the other move)"
        )
        for item in self.disagreements:
            out.append("  " + item.describe())
            reply = item.current.reply
            if len(reply) > MAX_REPLY_CHARS:
                reply = reply[:MAX_REPLY_CHARS] + "…"
            out += ["    | " + printable(line) for line in (reply.splitlines() or [""])]
        return out


def reread(tries: list[CallRecord]) -> Reread:
    """Read one decision's calls (first ask, then follow-ups) as the runner now would."""
    reply = ""
    for attempt, call in enumerate(tries):
        if call.reply is None:  # the call failed: the runner draws a fallback
            return Reread(None, "fallback", reply, len(tries) - 1)
        reply = call.reply
        action, rule = parse_decision(call.reply, call.finish_reason)
        if action is not None:
            return Reread(action, rule if attempt == 0 else "follow_up", reply, len(tries) - 1)
    rule = "fallback" if len(tries) >= TRIES else "unasked"
    return Reread(None, rule, reply, len(tries) - 1)


def audit_experiment(directory: Path) -> Audit:
    """Audit the experiment in `directory`; AuditError when it is not one."""
    if not directory.is_dir():
        raise AuditError(f"{directory}: not a directory")
    calls_path, rounds_dir = directory / "calls.jsonl", directory / "rounds"
    if not calls_path.is_file() and not rounds_dir.is_dir():
        raise AuditError(f"{directory}: not an experiment directory (no calls.jsonl, no rounds/)")
    loaded = load_experiment(directory)
    audit = Audit(directory)
    audit.notes += [f"unreadable: {problem}" for problem in loaded.problems]
    try:
        calls, bad = read_jsonl(calls_path, CallRecord)
    except OSError as exc:
        raise AuditError(f"{calls_path}: cannot read ({exc.strerror or exc})") from exc
    if bad:
        audit.notes.append(f"calls.jsonl: {len(bad)} unreadable lines skipped")
    # One record per call key, the last: a call cancelled in flight by an abort (or left
    # without a reply by a kill) is logged, then asked again on resume and logged again.
    decisions: dict[tuple[int, int, int], dict[int, CallRecord]] = {}
    asked_again = 0
    for call in calls:
        match = _DECISION_KEY.match(call.key)
        if match:
            r, g, p, t = map(int, match.groups())
            tries = decisions.setdefault((r, g, p), {})
            asked_again += t in tries
            tries[t] = call
    if asked_again:
        audit.notes.append(
            f"{asked_again} decision calls were asked again after an interruption: the last record of each is read"
        )
    games = _games(loaded, rounds_dir, audit)
    llm = {a.id for a in loaded.manifest.agents if a.kind == "llm"} if loaded.manifest else None
    for found in decisions.values():
        audit.calls += len(found)
    logged = [call for found in decisions.values() for call in found.values()]
    audit.failed_calls = sum(call.reply is None for call in logged)
    audit.cut_offs = sum(call.finish_reason == CUT_OFF for call in logged)
    if logged and all(call.messages is None and call.finish_reason is None for call in logged):
        audit.notes.append(
            "made before replies' messages and finish_reason were logged: replies are read as "
            "complete (cut-offs cannot be seen); auditing what is there"
        )
    if games and all(g.player1_parse_rule is None and g.player2_parse_rule is None for g in games.values()):
        audit.notes.append("made before parse rules were recorded: moves are compared by action and fallback")
    for (r, g, p), found in sorted(decisions.items()):
        game = games.get(f"r{r}_g{g}")
        if game is None:
            if f"games_r{r}.json" in audit.unreadable_rounds:
                audit.unchecked_calls += 1
            else:
                audit.calls_without_moves += 1
            continue
        tries = [call for _, call in sorted(found.items())]
        _compare(audit, game, p, reread(tries))
    for game in games.values():
        for p in (1, 2):
            agent = game.player1_id if p == 1 else game.player2_id
            if (llm is None or agent in llm) and (game.round, int(game.game_id.split("_g")[1]), p) not in decisions:
                audit.moves_without_calls += 1
    return audit


def _games(loaded: LoadedExperiment, rounds_dir: Path, audit: Audit) -> dict[str, GameResult]:
    """The games of every round file; a saved round's (one with a summary) that cannot be
    read, or is missing, goes in `audit.unreadable_rounds`."""
    games: dict[str, GameResult] = {}
    numbers = (
        {int(n) for p in rounds_dir.glob("games_r*.json") if (n := p.stem.removeprefix("games_r")).isdigit()}
        if rounds_dir.is_dir()
        else set()
    )
    for number in range(1, rounds_due(loaded)[1] + 1):  # rounds that must be on disk
        if number not in numbers and number not in loaded.summaries:
            audit.unreadable_rounds.append(f"games_r{number}.json")  # the round's files are gone
    for number in sorted(numbers | set(loaded.summaries)):
        try:
            games.update((game.game_id, game) for game in loaded.games(number))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            if number not in numbers:  # a saved round without its games file
                audit.notes.append(f"unreadable: games_r{number}.json: missing")
            else:
                audit.notes.append(f"unreadable: games_r{number}.json: {exc}")
            audit.unreadable_rounds.append(f"games_r{number}.json")
    return games


def _compare(audit: Audit, game: GameResult, player: int, current: Reread) -> None:
    recorded: Action = game.player1_action if player == 1 else game.player2_action
    fallback = (game.player1_fallback if player == 1 else game.player2_fallback) is not None
    recorded_rule = game.player1_parse_rule if player == 1 else game.player2_parse_rule
    agent = game.player1_id if player == 1 else game.player2_id
    audit.decisions += 1
    audit.rules[current.rule] += 1
    audit.follow_up_calls += current.follow_ups
    audit.recorded_fallbacks += fallback
    if recorded_rule is not None:
        audit.recorded_rules[recorded_rule] += 1
    if current.rule == "unasked" and recorded_rule == "follow_up" and current.follow_ups == 0:
        audit.lost_follow_ups += 1  # the follow-up's record is lost (a torn or cut log), not the rules' doing
        return
    agrees = current.action is None if fallback else current.action == recorded
    if not agrees:
        audit.disagreements.append(Disagreement(game.game_id, player, agent, recorded, fallback, current))
