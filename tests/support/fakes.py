"""Test doubles for the provider interface."""

from collections.abc import Callable

import anyio

from engine.providers.base import ChatRequest, Completion, ProviderError


class FakeProvider:
    """Answers with `reply(request)`; records every request it receives."""

    name = "fake"
    simulated = True

    def __init__(self, reply: Callable[[ChatRequest], str], latency_s: float = 0.0) -> None:
        self.reply = reply
        self.latency_s = latency_s
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if self.latency_s:
            await anyio.sleep(self.latency_s)
        text = self.reply(request)
        if isinstance(text, ProviderError):
            raise text
        return Completion(text=text, prompt_tokens=10, completion_tokens=2)

    def worst_case_cost(self, request: ChatRequest) -> float:
        return 0.0

    async def aclose(self) -> None:
        pass


def strategy_or(decision: str) -> Callable[[ChatRequest], str]:
    """Strategy prompts get a fixed rule; decision prompts get `decision`."""

    def reply(request: ChatRequest) -> str:
        if request.key.startswith("strategy/"):
            return "Reasoning.\nSTRATEGY: cooperate with everyone"
        return decision

    return reply
