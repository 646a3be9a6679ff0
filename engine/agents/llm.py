"""How an LLM agent writes its strategy and decides a move: the prompts, the follow-up
turns after an ambiguous reply, and the fallbacks when no usable reply came back."""

from typing import NamedTuple

from msgspec.structs import replace

from engine.calls import CallFailed, CallGateway, Report, now_iso
from engine.conditions import Condition
from engine.config import Config
from engine.models import Action, AgentInfo, ParseRule, RoundSummary, StrategyRecord, StrategySource
from engine.parsing import extract_strategy, parse_decision
from engine.prompts import (
    DECISION_MAX_TOKENS,
    DECISION_TEMPERATURE,
    STRATEGY_MAX_TOKENS,
    STRATEGY_TEMPERATURE,
    previous_rounds_text,
    render_decision_prompt,
    render_strategy_prompt,
    retry_instruction,
)
from engine.providers.base import ChatRequest, Completion, Message
from engine.rng import keyed_rng

CALL_FAILED = "call failed"  # how a fallback reason says no reply came back at all
DECISION_TRIES = 3  # the first ask + 2 follow-up turns when the reply is ambiguous
# A strategy reply with no strategy in it (cut off before any rule, or empty) is a failed
# call (SPEC §4): asked again, as a failed attempt would be, up to 3 times more.
STRATEGY_TRIES = 4
STRATEGY_CUT_OFF = "reply cut off by max_tokens before a STRATEGY: line"
CUT_OFF = "length"  # the finish_reason of a reply cut off by max_tokens


class Decision(NamedTuple):
    """One player's move and how it was reached."""

    action: Action
    fallback: str | None  # why the move was drawn, or None when it was read or scripted
    parse_rule: ParseRule


def strategy_source(agent: AgentInfo, strategy: StrategyRecord) -> StrategySource:
    """What the strategy the agent plays this round is (SPEC §6)."""
    if agent.kind == "scripted":
        return "scripted"
    if "carried_over" in strategy.flags:
        return "carried_over"
    return "fallback" if "fallback" in strategy.flags else "fresh"


def strategy_request(
    config: Config,
    condition: Condition,
    round: int,
    agent: AgentInfo,
    power: float,
    recent: list[RoundSummary],
    previous: str,
) -> ChatRequest:
    """The call that asks `agent` for its strategy of `round` (`previous`: the previous
    rounds' text of the prompt, from `previous_rounds_text`)."""
    prompt = render_strategy_prompt(
        agents=config.agents or 0,
        condition=condition,
        power=power,
        dynamics=config.power.dynamics,
        recent=recent,
        seed=config.seed,
        previous=previous,
    )
    return ChatRequest(
        key=f"strategy/r{round}/a{agent.id}",
        model=agent.model or config.models.main,
        messages=[Message("user", prompt)],
        temperature=STRATEGY_TEMPERATURE,
        max_tokens=STRATEGY_MAX_TOKENS,
    )


def added(spent: Completion, reply: Completion) -> Completion:
    """`reply` with the tokens and cost of the replies before it (`spent`) added."""
    return replace(
        reply,
        prompt_tokens=spent.prompt_tokens + reply.prompt_tokens,
        completion_tokens=spent.completion_tokens + reply.completion_tokens,
        cost=spent.cost + reply.cost,
    )


class LLMAgents:
    """The experiment's LLM agents, calling the models through one gateway. Remembers the
    keys of the replies cut off by max_tokens (so a replayed call counts once; only those
    keys are kept, not one entry per call) and the last call error (for the message when a
    whole round's calls failed)."""

    def __init__(self, gateway: CallGateway, config: Config, condition: Condition, report: Report) -> None:
        assert config.seed is not None and config.agents is not None
        self.gateway = gateway
        self.config = config
        self.seed = config.seed
        self.condition = condition
        self.report = report
        self.cut_off: set[str] = set()
        self.last_call_error: str | None = None
        # The previous rounds' text of the strategy prompts, the same for every agent of a
        # round: made once a round (for the summary it was made from, kept alive so that
        # `is` cannot match a new summary at a recycled address).
        self._previous: tuple[RoundSummary | None, int, str] = (None, -1, "")

    def previous_rounds(self, recent: list[RoundSummary]) -> str:
        last = recent[-1] if recent else None
        cached_last, cached_len, text = self._previous
        if cached_last is not last or cached_len != len(recent):
            text = previous_rounds_text(recent, self.seed, self.condition.show_power)
            self._previous = (last, len(recent), text)
        return text

    async def call(self, request: ChatRequest) -> Completion:
        """One model call through the gateway; remembers whether the reply was cut off."""
        completion = await self.gateway.call(request)
        if completion.finish_reason == CUT_OFF:
            self.cut_off.add(request.key)
        else:
            self.cut_off.discard(request.key)
        return completion

    async def write_strategy(
        self,
        round: int,
        agent: AgentInfo,
        previous: StrategyRecord | None,
        power: float,
        recent: list[RoundSummary],
    ) -> StrategyRecord:
        """The agent's strategy for `round`; `previous` is its last one (None in round 1)."""
        first = strategy_request(self.config, self.condition, round, agent, power, recent, self.previous_rounds(recent))
        spent = Completion(text="")  # the tokens and cost of the replies with no strategy
        reason = ""
        for attempt in range(STRATEGY_TRIES):
            # the same prompt asked again; its own key ("…/t1"), so resume replays each reply
            request = first if attempt == 0 else replace(first, key=f"{first.key}/t{attempt}")
            try:
                completion = await self.call(request)
            except CallFailed as exc:
                self.last_call_error = str(exc)
                return self.failed_strategy(round, agent.id, request.model, str(exc), previous, spent)
            text, flags = extract_strategy(completion.text, completion.finish_reason)
            if text is not None:
                break
            reason = STRATEGY_CUT_OFF if completion.text.strip() else "empty reply"
            self.last_call_error = reason
            spent = added(spent, completion)
        else:
            reason = f"{reason} (asked {STRATEGY_TRIES} times)"
            return self.failed_strategy(round, agent.id, first.model, reason, previous, spent, flags)
        total = added(spent, completion)
        return StrategyRecord(
            agent_id=agent.id,
            round=round,
            kind="llm",
            model=request.model,
            strategy_text=text,
            full_reasoning=completion.text,
            flags=flags,
            prompt_tokens=total.prompt_tokens,
            completion_tokens=total.completion_tokens,
            cost=total.cost,
            timestamp=now_iso(),
        )

    def failed_strategy(
        self,
        round: int,
        agent: int,
        model: str,
        reason: str,
        previous: StrategyRecord | None,
        completion: Completion | None = None,
        flags: list[str] | None = None,
    ) -> StrategyRecord:
        """No strategy came back: the agent keeps its previous one (`carried_over`), or in
        round 1 plays the condition's fallback text (`fallback`). A reply that came back
        unusable is kept in full_reasoning, with its tokens and cost."""
        flag = "carried_over" if previous else "fallback"
        text = previous.strategy_text if previous else self.condition.fallback_strategy
        self.report("strategy_failed", f"agent {agent}: {reason}; using the {flag} strategy", round=round, agent=agent)
        return StrategyRecord(
            agent_id=agent,
            round=round,
            kind="llm",
            model=model,
            strategy_text=text,
            full_reasoning=completion.text if completion else "",
            flags=[flag, *(flags or [])],
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            cost=completion.cost if completion else 0.0,
            timestamp=now_iso(),
        )

    async def decide(
        self, round: int, k: int, player: int, agent: AgentInfo, strategy: str, history: str, label: str
    ) -> Decision:
        """One move of game `k` (as its player 1 or 2), read from the sub model's reply (with
        up to 2 follow-up turns when it is ambiguous), or drawn by `on_unparseable` when no
        reply could be read. `label` is the opponent as the agent sees it."""
        swapped = self.condition.option_order == "shuffled" and (
            keyed_rng(self.seed, "option_order", round, k, player).random() < 0.5
        )
        messages = [Message("user", render_decision_prompt(strategy, history, label, swapped))]
        reason = ""
        for attempt in range(DECISION_TRIES):
            request = ChatRequest(
                key=f"decision/r{round}/g{k}/p{player}/t{attempt}",
                model=agent.sub_model or self.config.models.sub,
                messages=messages,
                temperature=DECISION_TEMPERATURE,
                max_tokens=DECISION_MAX_TOKENS,
            )
            try:
                completion = await self.call(request)
            except CallFailed as exc:
                self.last_call_error = str(exc)
                reason = f"{CALL_FAILED}: {exc}"
                break
            action, rule = parse_decision(completion.text, completion.finish_reason)
            if action is not None and rule is not None:
                return Decision(action, None, rule if attempt == 0 else "follow_up")
            cut = " (cut off by max_tokens)" if completion.finish_reason == CUT_OFF else ""
            reason = f"ambiguous reply after {attempt + 1} tries{cut}"
            messages = [*messages, Message("assistant", completion.text), Message("user", retry_instruction(swapped))]
        action = self.fallback_move(round, k, player)
        self.report(
            "decision_fallback",
            f"game r{round}_g{k} player {player}: {reason}; drew {action}",
            round=round,
            game=f"r{round}_g{k}",
            agent=agent.id,
        )
        return Decision(action, reason, "fallback")

    def fallback_move(self, round: int, k: int, player: int) -> Action:
        rule = self.condition.on_unparseable
        if rule == "cooperate":
            return "COOPERATE"
        if rule == "defect":
            return "DEFECT"
        return "COOPERATE" if keyed_rng(self.seed, "fallback", round, k, player).random() < 0.5 else "DEFECT"
