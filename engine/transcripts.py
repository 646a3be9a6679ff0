"""The calls behind one game, read back from calls.jsonl: each player's strategy record and
call, and its decision turns in order (for the transcript view)."""

from dataclasses import dataclass
from pathlib import Path

import msgspec

from engine.files import decoder, read_file, read_json
from engine.models import CallRecord, GameResult, StrategyRecord


@dataclass
class PlayerCalls:
    """What one player's move came from: its strategy record and call, its decision turns."""

    agent: int
    strategy: StrategyRecord | None
    strategy_call: CallRecord | None
    decisions: list[CallRecord]  # t0, t1, t2 in order


def game_calls(directory: Path, game: GameResult) -> tuple[list[PlayerCalls], list[str]]:
    """The calls of one game and of the two strategies it was played under, from
    DIR/calls.jsonl (only lines whose key fits are decoded), and the problems met."""
    round = game.round
    number = game.game_id.split("_g")[-1]
    players = (game.player1_id, game.player2_id)
    wanted = {f"strategy/r{round}/a{p}".encode() for p in players}
    prefix = f'"key":"decision/r{round}/g{number}/p'.encode()
    problems: list[str] = []
    calls: dict[str, CallRecord] = {}
    try:
        data = read_file(directory / "calls.jsonl")  # regular files only, size-capped
    except OSError as exc:
        data = b""
        problems.append(f"calls.jsonl: {exc.strerror or exc}")
    dec = decoder(CallRecord)
    for line in data.splitlines():
        if prefix not in line and not any(b'"key":"' + w + b'"' in line for w in wanted):
            continue
        try:
            record = dec.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            problems.append(f"calls.jsonl: a line could not be read: {exc}")
            continue
        calls[record.key] = record
    strategies: dict[int, StrategyRecord] = {}
    try:
        strategies = {
            s.agent_id: s for s in read_json(directory / "rounds" / f"strategies_r{round}.json", list[StrategyRecord])
        }
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        problems.append(f"strategies_r{round}.json: {exc}")
    out = []
    for n, agent in enumerate(players, start=1):
        turns = [calls[k] for t in range(3) if (k := f"decision/r{round}/g{number}/p{n}/t{t}") in calls]
        out.append(PlayerCalls(agent, strategies.get(agent), calls.get(f"strategy/r{round}/a{agent}"), turns))
    return out, problems
