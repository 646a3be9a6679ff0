"""The offline default: a deterministic, seeded stand-in for both models (SPEC §5.4).

It answers the rendered prompt text through the same interface as a real API, so the
whole pipeline (rendering, parsing, follow-ups, logging) is exercised. Every choice comes
from a generator keyed by the call's key (and a strategy's by its prompt), so concurrency
never changes an answer.

It is a null model by default (SPEC §7): the strategy archetypes have the same odds under
every condition, so a sweep over conditions must find no effect. `effect=True`
(config `provider.simulated_effect`) makes the identity statement raise the superrational
share: a demo effect, recorded in the manifest's config."""

import hashlib
import re

import anyio

from engine.prompts import IDENTITY_STATEMENT
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

# Archetype weights under every condition; with the demo effect on, the identity statement
# in the prompt switches to WEIGHTS_IDENTITY.
WEIGHTS_PLAIN = {
    "cooperative": 2,
    "tit_for_tat": 4,
    "grudging": 2,
    "exploitative": 2,
    "random": 1,
    "superrational": 0.5,
}
WEIGHTS_IDENTITY = {**WEIGHTS_PLAIN, "superrational": 5}
NO_MARKER_SHARE = 0.05  # strategy replies without the STRATEGY: line
# From round 2 on (the prompt shows a cooperation rate), a share of strategy replies open with
# surprise at a defection, so surprise_at_defection and its interval are exercised too; the
# same share under every condition (a null model).
SURPRISED = "I was surprised that some opponents defected last round."
SURPRISE_SHARE = 0.15

# Decision replies in the styles real models write (SPEC §5.2), with their seeded shares;
# the rest are the bare word. Each style is either read by the strict rules (word, line,
# json) or ambiguous as a whole (it gets a follow-up turn) - never misreadable: a style
# that names the other move names this one too. {move} is the intended move.
READABLE_STYLES = {
    "answer_first": (0.04, "{move}\n\nMy strategy says to {verb} against this opponent, given its past games."),
    "answer_last": (0.04, "Following my strategy and the history with this opponent, I {verb}.\n\n**{move}**"),
    "labelled": (0.02, "My strategy settles it for this opponent: I {verb}.\n\nDecision: {move}"),
    "json": (
        0.02,
        '```json\n{{"decision": "{move}", "reason": "my strategy says to {verb} against this opponent"}}\n```',
    ),
}
AMBIGUOUS_STYLES = {
    "negation": (0.02, "I will not {other} against this opponent, so I {move}."),
    "hedge": (0.02, "I could {move} to follow my rule, or {other} to play it safe."),
    "cut_off": (0.02, "Looking at my strategy and the games so far, the move that fits this opponent is to"),
    "empty": (0.01, ""),
}
UNCLEAR_FOLLOW_UP = 0.05  # follow-up answers that are still not one word (two in a row: a fallback)
OTHER = {"COOPERATE": "DEFECT", "DEFECT": "COOPERATE"}

_DECISION_RE = re.compile(r"^Decision \((?:COOPERATE/DEFECT|DEFECT/COOPERATE)\):", re.M)
_STRATEGY_RE = re.compile(r"Your strategy:\n(.*?)\n\nGame history so far:", re.S)
_LABEL_RE = re.compile(r"Current opponent: Opponent ([\w-]+)")
_COOP_RATE_RE = re.compile(r"cooperation rate ([\d.]+)%")


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class SimulatedProvider:
    name = "simulated"
    simulated = True

    def __init__(self, seed: int, latency_ms: float = 0.0, effect: bool = False) -> None:
        self.seed = seed
        self.latency_s = latency_ms / 1000.0
        self.effect = effect

    async def complete(self, request: ChatRequest) -> Completion:
        # Even at 0 ms a call gives the loop a turn, as a network call does: otherwise a
        # worker would play the whole round in one loop step, freezing a UI on the loop and
        # keeping every prompt and call record of the round in memory until it ends.
        await anyio.sleep(self.latency_s)
        prompt = request.messages[0].content
        finish_reason = "stop"
        if _DECISION_RE.search(prompt):
            text, finish_reason = self._decision(request, prompt)
        else:
            text = self._strategy(request, prompt)
        prompt_tokens = sum(estimate_tokens(m.content) for m in request.messages)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=estimate_tokens(text),
            finish_reason=finish_reason,
        )

    def worst_case_cost(self, request: ChatRequest) -> float:
        return 0.0

    async def aclose(self) -> None:
        pass

    def _strategy(self, request: ChatRequest, prompt: str) -> str:
        # Keyed by the prompt too: two conditions' prompts draw independently, at the same odds.
        rng = keyed_rng(self.seed, "sim", request.key, digest(prompt))
        identity = self.effect and IDENTITY_STATEMENT in prompt
        weights = dict(WEIGHTS_IDENTITY if identity else WEIGHTS_PLAIN)
        rate = _COOP_RATE_RE.search(prompt)
        if rate and float(rate.group(1)) < 50.0:  # a defecting population breeds caution
            weights["grudging"] *= 2
            weights["exploitative"] *= 1.5
        names = sorted(weights)
        archetype = rng.choices(names, weights=[weights[n] for n in names])[0]
        reasoning, rule = ARCHETYPES[archetype]
        if rate and rng.random() < SURPRISE_SHARE:
            reasoning = f"{SURPRISED} {reasoning}"
        if rng.random() < NO_MARKER_SHARE:
            return f"{reasoning} My rule: {rule}"
        return f"{reasoning}\n\nSTRATEGY: {rule}"

    def _decision(self, request: ChatRequest, prompt: str) -> tuple[str, str]:
        """(reply, finish_reason). The intended move is the same for the first ask and its
        follow-ups (keyed without the try number). Keyed by the prompt too, as strategies
        are: two conditions whose prompts differ draw their reply styles, follow-ups and
        random moves independently (a seed's fallbacks are not the same in both)."""
        decision, prompt_id = request.key.rpartition("/t")[0] or request.key, digest(prompt)
        move = self._apply_strategy(prompt, keyed_rng(self.seed, "sim", decision, prompt_id))
        rng = keyed_rng(self.seed, "sim", request.key, prompt_id)
        if len(request.messages) > 1:  # a follow-up turn: one word, nearly always
            return (move if rng.random() >= UNCLEAR_FOLLOW_UP else "I cannot decide."), "stop"
        style = reply_style(rng.random())
        if style is None:
            return move, "stop"
        _, template = {**READABLE_STYLES, **AMBIGUOUS_STYLES}[style]
        return template.format(
            move=move, other=OTHER[move], verb=move.lower()
        ), "length" if style == "cut_off" else "stop"

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


def digest(prompt: str) -> str:
    """What keys a draw to its prompt: a prompt's hash, made once (keying by the text itself
    costs its repr, ~0.2 ms for the 25 KB decision prompt of a long history, twice a call)."""
    return hashlib.blake2b(prompt.encode(), digest_size=16).hexdigest()


def reply_style(roll: float) -> str | None:
    """The decision reply style a uniform roll in [0, 1) falls on (None: the bare word)."""
    for name, (share, _) in {**READABLE_STYLES, **AMBIGUOUS_STYLES}.items():
        if roll < share:
            return name
        roll -= share
    return None
