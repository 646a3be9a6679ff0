"""Result records: msgspec Structs that are the on-disk schema (SPEC §6).

New fields get defaults; a field's type never changes; readers ignore unknown fields.
"""

from typing import Literal

import msgspec

from engine.conditions import Condition
from engine.config import Config
from engine.game import Action

SCHEMA_VERSION = 1

Status = Literal["running", "completed", "aborted", "failed", "budget_exceeded"]
# How a move was read (SPEC §5.2): a model reply by one of the strict rules, a follow-up
# turn's reply, a drawn fallback, or a scripted agent's rule.
ParseRule = Literal["word", "line", "json", "follow_up", "fallback", "scripted"]
# What the strategy a move was played under is (SPEC §6).
StrategySource = Literal["fresh", "carried_over", "fallback", "scripted"]


class Record(msgspec.Struct, kw_only=True):
    pass


class GameResult(Record):
    game_id: str
    round: int
    player1_id: int
    player2_id: int
    player1_action: Action
    player2_action: Action
    player1_payoff: float
    player2_payoff: float
    player1_power_before: float
    player2_power_before: float
    player1_fallback: str | None = None  # reason, when the move was a fallback
    player2_fallback: str | None = None
    timestamp: str = ""
    # None in files written before parse rules were recorded
    player1_parse_rule: ParseRule | None = None
    player2_parse_rule: ParseRule | None = None
    player1_strategy_source: StrategySource | None = None
    player2_strategy_source: StrategySource | None = None


class StrategyRecord(Record):
    agent_id: int
    round: int
    kind: Literal["llm", "scripted"]
    model: str | None  # main model (llm) or None (scripted)
    strategy_text: str
    full_reasoning: str
    flags: list[str] = []  # marker_missing, truncated, carried_over, fallback
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    timestamp: str = ""


class AnonymizedGame(Record):
    round: int
    anonymous_id1: str
    anonymous_id2: str
    action1: Action
    action2: Action
    power_ratio: float  # player1 power / player2 power, before the game


class Distribution(Record):
    min: float
    max: float
    avg: float


class PowerDistribution(Record):
    mean: float
    std: float
    min: float
    max: float


class RoundSummary(Record):
    round: int
    # fraction 0..1 of the counted moves (fallbacks left out); None when no move counts
    # (files written before fallbacks were left out hold a float over all moves)
    cooperation_rate: float | None
    mutual_cooperation_rate: float | None  # of games whose two moves both count
    average_score: float  # mean over agents of their round score
    score_variance: float  # population variance of the agents' round scores
    score_distribution: Distribution
    power_distribution: PowerDistribution  # after the round's power update
    anonymized_games: list[AnonymizedGame]
    strategy_similarity: float | None
    fallback_decisions: int
    duration_s: float
    agent_scores: list[float] = []  # round score by agent id
    agent_powers: list[float] = []  # power after the update, by agent id
    fallback_rate: float | None = None  # fallback moves / all moves of the round
    cooperation_rate_fresh: float | None = None  # over counted moves under fresh or scripted strategies


class AgentInfo(Record):
    id: int
    kind: Literal["llm", "scripted"]
    strategy: str | None = None  # scripted strategy name
    model: str | None = None  # llm main model
    sub_model: str | None = None  # llm sub model
    initial_power: float = 100.0
    final_power: float = 100.0
    total_score: float = 0.0


class AcausalIndicators(Record):
    identity_reasoning_frequency: float | None
    cooperation_despite_asymmetry: float | None
    cooperation_when_symmetric: float | None
    surprise_at_defection: float | None
    strategy_convergence: float | None
    rounds_to_convergence: int | None
    cooperation_trend: float | None
    overall_cooperation_rate: float | None  # over counted moves (fallbacks left out)
    fallback_rate: float | None  # fallback moves / all moves
    overall_cooperation_rate_fresh: float | None = None  # counted moves under fresh/scripted strategies


class GroupCooperation(Record):
    """Cooperation of one group of agents: LLM agents sharing main and sub model, or
    scripted agents sharing a strategy."""

    group: str  # "main model / sub model" (llm) or "scripted:strategy"
    agents: list[int]
    moves: int  # counted moves (fallbacks left out)
    cooperation_rate: float | None
    in_group_cooperation_rate: float | None  # its moves against agents of the same group
    out_group_cooperation_rate: float | None  # its moves against agents of other groups
    cooperation_per_round: list[float | None] = []
    fallback_moves: int = 0


class CooperationBreakdown(Record):
    groups: list[GroupCooperation]
    in_group_cooperation_rate: float | None  # all moves against an agent of the mover's group
    out_group_cooperation_rate: float | None


class Validity(Record):
    """Whether a run's numbers can be read as model behaviour (SPEC §6)."""

    valid: bool
    reasons: list[str] = []  # e.g. "fallback moves 12% > 5%"
    moves: int = 0  # all moves
    model_moves: int = 0  # moves decided by a model reply (word/line/json/follow_up)
    fallback_moves: int = 0
    fallback_share: float | None = None  # of LLM moves
    follow_up_share: float | None = None  # of LLM moves read from a follow-up turn
    cut_off_replies: int = 0  # decision and strategy replies with finish_reason "length"
    strategies_fresh: int = 0  # LLM strategies
    strategies_carried_over: int = 0
    strategies_fallback: int = 0
    non_fresh_share: float | None = None
    # Fresh LLM strategies whose rule was found by a guess (SPEC §4's flags): no marker line
    # (the last 100 words), more than one (the last one's text), or cut short (at 200 words,
    # or by max_tokens after the marker). None: not counted (a file from an older version).
    strategies_marker_missing: int | None = None
    strategies_multiple_markers: int | None = None
    strategies_truncated: int | None = None
    strategies_flagged: int | None = None  # fresh LLM strategies with any of those flags
    flagged_share: float | None = None  # strategies_flagged / strategies_fresh


class ExperimentResult(Record):
    experiment_id: str
    status: Status
    start_time: str
    end_time: str | None
    seed: int
    config: Config
    condition: Condition
    total_rounds: int  # completed rounds
    total_games: int
    total_api_calls: int  # retries included
    total_retries: int
    total_cost: float
    cost_is_estimate: bool
    round_summaries: list[RoundSummary]
    agents: list[AgentInfo]
    acausal_indicators: AcausalIndicators
    error_count: int
    simulated: bool = False
    message: str | None = None  # why it stopped, when not completed
    schema_version: int = SCHEMA_VERSION
    cooperation_breakdown: CooperationBreakdown | None = None  # by group, in- vs out-group
    validity: Validity | None = None  # None in files written before validity was recorded
    empty_replies: int = 0  # billed replies without usable content (each retried once at most)
    # resumed after this many stops that left no final status (kill -9, a crash, a power
    # cut): the calls in flight then are in neither total_api_calls nor total_cost
    unclean_stops: int = 0


class Manifest(Record):
    experiment_id: str
    status: Status
    start_time: str
    seed: int
    config: Config
    condition: Condition
    provider: str
    base_url: str | None
    simulated: bool
    main_model: str
    sub_model: str
    prompt_hashes: dict[str, str]
    package_versions: dict[str, str]
    agents: list[AgentInfo]
    end_time: str | None = None
    message: str | None = None
    warnings: list[str] = []  # design caveats the researcher should know (docs/results.md)
    schema_version: int = SCHEMA_VERSION
    unclean_stops: int = 0  # resumes after a stop that left `running` here (ExperimentResult's)


class Usage(Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LoggedMessage(Record):
    role: str
    content: str


class CallRecord(Record):
    """One line of calls.jsonl: a finished model call (all its attempts)."""

    key: str  # what was decided, e.g. "strategy/r1/a3", "decision/r2/g5/p1/t0"
    model: str
    attempts: int
    reply: str | None  # None when the call failed
    usage: Usage
    cost: float
    cost_is_estimate: bool
    latency_s: float
    error: str | None = None
    time: str = ""
    # the transcript: None in calls.jsonl files written before they were recorded
    messages: list[LoggedMessage] | None = None
    finish_reason: str | None = None  # "stop", "length", ... as the server said
    empty_replies: int = 0  # attempts answered billed but empty (no choices, no content)
    unsent: int = 0  # attempts that never reached the server (connection refused)
    failures: list[str] = []  # why each failed attempt failed (retried or not), in order


class ErrorRecord(Record):
    """One line of experiment_errors.log."""

    time: str
    type: str
    message: str
    context: dict[str, str | int | float | None] = {}
