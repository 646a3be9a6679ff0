"""The offline default: a deterministic, seeded stand-in for both models (SPEC §5.4).

It answers the rendered prompt text through the same interface as a real API, so the
whole pipeline (rendering, parsing, retries, logging) is exercised. Every choice comes
from a generator keyed by the call's key, so concurrency never changes an answer."""

import re

import anyio

from engine.prompts import IDENTITY_STATEMENT, RETRY_INSTRUCTION
from engine.providers.base import ChatRequest, Completion
from engine.rng import keyed_rng

# name -> (reasoning, strategy rule). The rule's wording is what decisions are read from.
ARCHETYPES: dict[str, tuple[str, str]] = {
    "cooperative": (
        "Mutual cooperation gives the best total outcome, and being generous keeps games friendly.",
        "Always COOPERATE with every opponent, whatever happened before.",
    ),
    "tit_for_tat": (
        "Reciprocity rewards cooperators and does not let defectors exploit me for long.",
        "COOPERATE the first time I meet an opponent; after that copy that opponent's last move.",
    ),
    "grudging": (
        "I want to cooperate, but an opponent who exploits me once should not get a second chance.",
        "COOPERATE with an opponent until it defects against me once; then DEFECT against it forever.",
    ),
    "exploitative": (
        "Defecting earns more against cooperators and protects me against defectors.",
        "Always DEFECT against every opponent.",
    ),
    "random": (
        "An unpredictable player cannot be exploited systematically.",
        "Pick COOPERATE or DEFECT at random with equal odds in every game.",
    ),
    "superrational": (
        "Every opponent is an identical copy of me reasoning exactly as I do, so our choices are "
        "logically correlated: whatever I decide, they decide. Superrational players therefore "
        "cooperate.",
        "Always COOPERATE: my opponents are copies of me and will choose as I do.",
    ),
}

# Archetype weights without / with the identity statement in the prompt.
WEIGHTS_PLAIN = {"cooperative": 2, "tit_for_tat": 4, "grudging": 2, "exploitative": 2, "random": 1, "superrational": 0.5}
WEIGHTS_IDENTITY = {**WEIGHTS_PLAIN, "superrational": 5}
VERBOSE_SHARE = 0.05  # decision replies with reasoning before the final word
AMBIGUOUS_SHARE = 0.03  # decision replies naming both moves (exercises the retry path)
NO_MARKER_SHARE = 0.05  # strategy replies without the STRATEGY: line

_STRATEGY_RE = re.compile(r"Your strategy:\n(.*?)\n\nGame history so far:", re.S)
_LABEL_RE = re.compile(r"Current opponent: Opponent ([\w-]+)")
_COOP_RATE_RE = re.compile(r"cooperation rate ([\d.]+)%")


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class SimulatedProvider:
    name = "simulated"
    simulated = True

    def __init__(self, seed: int, latency_ms: float = 0.0) -> None:
        self.seed = seed
        self.latency_s = latency_ms / 1000.0

    async def complete(self, request: ChatRequest) -> Completion:
        if self.latency_s:
            await anyio.sleep(self.latency_s)
        prompt = request.messages[0].content
        if "Decision (COOPERATE/DEFECT):" in prompt:
            text = self._decision(request, prompt)
        else:
            text = self._strategy(request, prompt)
        prompt_tokens = sum(estimate_tokens(m.content) for m in request.messages)
        return Completion(
            text=text, prompt_tokens=prompt_tokens, completion_tokens=estimate_tokens(text), finish_reason="stop"
        )

    def worst_case_cost(self, request: ChatRequest) -> float:
        return 0.0

    async def aclose(self) -> None:
        pass

    def _strategy(self, request: ChatRequest, prompt: str) -> str:
        rng = keyed_rng(self.seed, "sim", request.key)
        weights = dict(WEIGHTS_IDENTITY if IDENTITY_STATEMENT in prompt else WEIGHTS_PLAIN)
        rate = _COOP_RATE_RE.search(prompt)
        if rate and float(rate.group(1)) < 50.0:  # a defecting population breeds caution
            weights["grudging"] *= 2
            weights["exploitative"] *= 1.5
        names = sorted(weights)
        archetype = rng.choices(names, weights=[weights[n] for n in names])[0]
        reasoning, rule = ARCHETYPES[archetype]
        if rng.random() < NO_MARKER_SHARE:
            return f"{reasoning} My rule: {rule}"
        return f"{reasoning}\n\nSTRATEGY: {rule}"

    def _decision(self, request: ChatRequest, prompt: str) -> str:
        rng = keyed_rng(self.seed, "sim", request.key)
        move = self._apply_strategy(prompt, rng)
        if request.messages[-1].content == RETRY_INSTRUCTION:
            return move if rng.random() < 0.9 else "I cannot decide."
        roll = rng.random()
        if roll < AMBIGUOUS_SHARE:
            return "I could COOPERATE to build trust, or DEFECT to protect myself."
        if roll < AMBIGUOUS_SHARE + VERBOSE_SHARE:
            return f"Following my strategy and the history with this opponent.\n\n**{move}**"
        return move

    @staticmethod
    def _apply_strategy(prompt: str, rng) -> str:
        strategy_match = _STRATEGY_RE.search(prompt)
        strategy = strategy_match.group(1).lower() if strategy_match else ""
        label_match = _LABEL_RE.search(prompt)
        label = label_match.group(1) if label_match else ""
        # Only this opponent's past games, found by the history line format.
        theirs = re.findall(rf"vs Opponent {label}: You \w+, They (\w+)", prompt) if label else []
        if "random" in strategy:
            return "COOPERATE" if rng.random() < 0.5 else "DEFECT"
        if "copy" in strategy:
            return theirs[-1] if theirs else "COOPERATE"
        if "forever" in strategy or "until" in strategy:
            return "DEFECT" if "DEFECT" in theirs else "COOPERATE"
        if "always defect" in strategy:
            return "DEFECT"
        if "cooperate" in strategy:
            return "COOPERATE"
        if "defect" in strategy:
            return "DEFECT"
        return "COOPERATE" if rng.random() < 0.5 else "DEFECT"
