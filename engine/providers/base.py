"""The provider interface every model backend implements (simulated, OpenAI-compatible).

A provider makes exactly one attempt per `complete` call and raises `ProviderError` on
failure; rate limiting, retries, the budget, pausing and the call log live in one place
for all providers (`engine.calls.CallGateway`)."""

from typing import Literal, Protocol

import msgspec


class Message(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # what is being decided; stable across runs (used for the call log and resume)
    model: str
    messages: list[Message]
    temperature: float
    max_tokens: int


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_is_estimate: bool = False
    finish_reason: str | None = None  # "length": cut off at max_tokens (SPEC §5.2)


EMPTY_REPLY = "empty_reply"  # ProviderError.kind of a reply billed but without usable content


class ProviderError(Exception):
    """One failed attempt. `retryable`: worth another attempt after backoff.
    `fatal`: the run cannot go on (bad key, no credit); `retry_after`: seconds the server asked for.
    `cost`: what the attempt was billed although it failed (a reply with usage but no usable
    content); the gateway adds it to the spend like any other cost. `billing_unknown`: the
    server may have billed the attempt but said nothing readable of what (no reply within
    the timeout or a connection broken after the request was sent, a 200 reply that cannot
    be read); the gateway then counts its worst case, as an estimate."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        fatal: bool = False,
        retry_after: float | None = None,
        kind: str = "provider_error",
        cost: float = 0.0,
        cost_is_estimate: bool = False,
        reached: bool = True,
        billing_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.fatal = fatal
        self.retry_after = retry_after
        self.kind = kind
        self.cost = cost
        self.cost_is_estimate = cost_is_estimate
        self.reached = reached  # False: the request never got to the server (not an API call)
        self.billing_unknown = billing_unknown


class Provider(Protocol):
    name: str
    simulated: bool

    async def complete(self, request: ChatRequest) -> Completion: ...

    def worst_case_cost(self, request: ChatRequest) -> float:
        """Upper bound of what this request can cost (prompt estimate + max_tokens at list price)."""
        ...

    async def aclose(self) -> None: ...
