"""The experiment's own records: its agents, its manifest (what was run, with what code)
and its result (what came of it); and, before any of them is made, whether its budget
can pay for its first call (`check_budget`)."""

import functools
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import msgspec

from engine import analysis, game, validity
from engine.agents.llm import strategy_request
from engine.budget import dollars
from engine.conditions import Condition, resolve_condition
from engine.config import Config
from engine.control import RunStats
from engine.errors import ConfigError
from engine.loading import PlayedRounds
from engine.models import AgentInfo, ExperimentResult, Manifest, Status
from engine.pricing import PriceTable
from engine.prompts import STRATEGY_MAX_TOKENS, previous_rounds_text, prompt_hashes
from engine.state import ExperimentState


def build_agents(config: Config) -> list[AgentInfo]:
    """Ids in population order: groups as given, each group's agents consecutively."""
    powers = game.initial_powers(config.seed or 0, config.agents or 0, config.power.initial)
    agents: list[AgentInfo] = []
    for group in config.population:
        for _ in range(group.count):
            llm = group.kind == "llm"
            agents.append(
                AgentInfo(
                    id=len(agents),
                    kind=group.kind,
                    strategy=None if llm else group.strategy,
                    model=(group.model or config.models.main) if llm else None,
                    sub_model=(group.sub_model or config.models.sub) if llm else None,
                    initial_power=powers[len(agents)],
                    final_power=powers[len(agents)],
                )
            )
    return agents


@functools.cache  # reading package metadata takes tens of ms: once per process
def package_versions() -> dict[str, str]:
    out = {}
    for name in ("acausal-tui", "textual", "httpx", "anyio", "msgspec"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def design_warnings(condition: Condition, agents: list[AgentInfo]) -> list[str]:
    """Caveats recorded in the manifest. Telling agents something false can be a deliberate
    design, so it is allowed, but never silent."""
    models = {(a.model, a.sub_model) for a in agents if a.kind == "llm"}
    if condition.identity and models and (len(models) > 1 or any(a.kind == "scripted" for a in agents)):
        return [
            "the identity statement tells every LLM agent that all opponents are identical "
            "copies of the same model, which is false for this population (scripted agents "
            "or several models)"
        ]
    return []


def new_manifest(
    experiment_id: str,
    start_time: str,
    config: Config,
    condition: Condition,
    agents: list[AgentInfo],
    provider: str,
    simulated: bool,
) -> Manifest:
    """The manifest of a run that starts now."""
    assert config.seed is not None
    return Manifest(
        experiment_id=experiment_id,
        status="running",
        start_time=start_time,
        seed=config.seed,
        config=config,
        condition=condition,
        provider=provider,
        base_url=None if simulated else config.provider.base_url,
        simulated=simulated,
        main_model=config.models.main,
        sub_model=config.models.sub,
        prompt_hashes=prompt_hashes(),
        package_versions=dict(package_versions()),
        agents=agents,
        warnings=design_warnings(condition, agents),
    )


def final_agents(agents: list[AgentInfo], state: ExperimentState, played: PlayedRounds) -> list[AgentInfo]:
    """The agents' final power and total score after the rounds `played`: the state's, or
    when a round file could not be read back (the result covers fewer rounds), as those
    rounds' summaries say (as resume rebuilds them). New records, not changed in place:
    observers hold the old ones (RunStarted's manifest) and may read them at any time."""
    powers, totals = state.powers, state.total_scores
    if len(played.summaries) < len(state.summaries):
        powers = list(played.summaries[-1].agent_powers) if played.summaries else [a.initial_power for a in agents]
        totals = [0.0] * len(agents)
        for summary in played.summaries:
            totals = [t + s for t, s in zip(totals, summary.agent_scores, strict=True)]
    return [
        msgspec.structs.replace(agent, final_power=powers[agent.id], total_score=totals[agent.id]) for agent in agents
    ]


def build_result(
    experiment_id: str,
    config: Config,
    condition: Condition,
    agents: list[AgentInfo],
    played: PlayedRounds,
    stats: RunStats,
    *,
    status: Status,
    message: str | None,
    start_time: str,
    end_time: str,
    simulated: bool,
    cost_is_estimate: bool,
    error_count: int,
    cut_offs: int,
    unclean_stops: int = 0,
) -> ExperimentResult:
    """What came of the run: its counters, summaries, indicators and validity."""
    assert config.seed is not None
    return ExperimentResult(
        experiment_id=experiment_id,
        status=status,
        start_time=start_time,
        end_time=end_time,
        seed=config.seed,
        config=config,
        condition=condition,
        total_rounds=len(played.summaries),
        total_games=len(played.games),
        total_api_calls=stats.calls,
        total_retries=stats.retries,
        total_cost=stats.cost,
        cost_is_estimate=cost_is_estimate,
        round_summaries=played.summaries,
        agents=agents,
        acausal_indicators=analysis.compute_indicators(played.strategies, played.games, played.summaries),
        error_count=error_count,
        simulated=simulated,
        cooperation_breakdown=analysis.cooperation_breakdown(agents, played.games),
        message=None if status == "completed" else message,
        empty_replies=stats.empty_replies,
        unclean_stops=unclean_stops,
        validity=validity.compute_validity(
            agents,
            played.games,
            played.strategies,
            cut_offs,
            config.validity,
        ),
    )


def check_budget(configs: Sequence[Config]) -> None:
    """Refuse (ConfigError) runs of `configs` sharing a budget (one experiment, or a
    sweep's) when one of them could not start even one call: max_cost_usd below the worst
    case the gateway holds for its first call (the first LLM agent's round-1 strategy,
    prompt estimate plus max_tokens at list price; the gateway reserves calls in agent
    order, and a refusal stops every later one). Unpriced calls (the simulated provider,
    unknown models) are never refused."""
    dearest: tuple[float, str] | None = None
    for config in configs:
        limit = config.provider.max_cost_usd
        if config.provider.name == "simulated" or limit is None:
            return
        first = next((agent for agent in build_agents(config) if agent.kind == "llm"), None)
        if first is None:
            continue
        condition = resolve_condition(config.condition, config.switches)
        previous = previous_rounds_text([], config.seed or 0, condition.show_power)
        request = strategy_request(config, condition, 1, first, first.initial_power, [], previous)
        prices = PriceTable(config.provider.prices, on_unknown=lambda model: None)
        worst = prices.worst_case(request.model, (m.content for m in request.messages), request.max_tokens)
        if worst > limit and (dearest is None or worst > dearest[0]):
            dearest = (worst, request.model)
    if dearest is not None:
        worst, model = dearest
        raise ConfigError(
            f"provider.max_cost_usd ({dollars(configs[0].provider.max_cost_usd or 0.0)}) is below what the "
            f"first call can cost ({dollars(worst)}: a first strategy prompt and its {STRATEGY_MAX_TOKENS} "
            f"tokens at {model}'s list price), so no call could start; raise it (--max-cost) or remove it"
        )


def unclean_note(unclean_stops: int) -> str | None:
    """What a result resumed after a kill or crash cannot count, or None (docs/resume.md)."""
    if not unclean_stops:
        return None
    times = "once" if unclean_stops == 1 else f"{unclean_stops} times"
    return (
        f"resumed after a kill or crash {times}: any calls in flight then, and replies not yet "
        "logged, are in neither the calls nor the cost"
    )
