"""List prices per model, for cost estimates and the budget's worst case (SPEC §8).

Prices are USD per million tokens, input (prompt) and output (completion). The defaults
cover the default models; `provider.prices` in the config overrides or extends them.
A model the table does not know is priced at 0 (the cost stays marked as an estimate)
and `on_unknown` is called once for it, so the run can say that its cost is unknown."""

import logging
from collections.abc import Callable, Iterable, Mapping

from engine.config import Price

DEFAULT_PRICES: dict[str, Price] = {
    "openai/gpt-4.1-nano": Price(input=0.10, output=0.40),
    "openai/gpt-4.1-mini": Price(input=0.40, output=1.60),
    "google/gemini-2.5-flash": Price(input=0.30, output=2.50),
}

log = logging.getLogger(__name__)
_warned: set[str] = set()  # the headless default says it once a process, not once a provider


def warn_unknown(model: str) -> None:
    """The default for a provider made without a warning sink (the headless CLI): a log
    warning, which Python prints on stderr when nothing configured logging."""
    if model not in _warned:
        _warned.add(model)
        log.warning("no price known for model %r: its cost counts as 0 (set provider.prices)", model)


def estimate_tokens(text: str) -> int:
    """Rough token count: four characters a token."""
    return max(1, len(text) // 4)


class PriceTable:
    def __init__(
        self,
        overrides: Mapping[str, Price] | None = None,
        on_unknown: Callable[[str], None] = warn_unknown,
    ) -> None:
        self.prices = {**DEFAULT_PRICES, **(overrides or {})}
        self.on_unknown = on_unknown
        self.unknown: set[str] = set()

    def price(self, model: str) -> Price | None:
        """Exact id first; a bare id ("gpt-4.1-nano", as OpenAI itself names it) also
        matches a vendor-prefixed entry ("openai/gpt-4.1-nano")."""
        found = self.prices.get(model)
        if found is None and "/" not in model:
            found = next((p for k, p in self.prices.items() if k.split("/", 1)[-1] == model), None)
        if found is None and model not in self.unknown:
            self.unknown.add(model)
            self.on_unknown(model)
        return found

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000

    def worst_case(self, model: str, prompt: Iterable[str], max_tokens: int) -> float:
        """What a call can cost at most: its prompt's estimated tokens and all `max_tokens`
        at list price (what the budget holds for it while it is in flight)."""
        return self.cost(model, sum(estimate_tokens(text) for text in prompt), max_tokens)
