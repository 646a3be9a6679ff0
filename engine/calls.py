"""The one gateway every model call goes through: pause gate, budget, shared limiter,
retries, counters, the call log and (on resume) replay of calls already paid for."""

import time
from collections.abc import Callable
from datetime import UTC, datetime

import anyio

from engine.control import RunControl
from engine.events import CallRetried, Event
from engine.limits import MAX_ATTEMPTS, Limiter, backoff_delay
from engine.models import CallRecord, LoggedMessage, Usage
from engine.providers.base import ChatRequest, Completion, Provider, ProviderError
from engine.rng import keyed_rng

# Account-wide conditions: the wait they ask for applies to every call of the run.
SLOWS_EVERYONE = ("rate_limit", "in_flight_budget")


class CallFailed(Exception):
    """A call that failed after its retries (or a non-retryable error); the run goes on."""


class FatalCallError(Exception):
    """An error that stops the run (bad key, no credit): status `failed`."""


class BudgetExceeded(Exception):
    """The next call could push spending past max_cost_usd: stop scheduling."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Budget:
    """A spending limit shared by every gateway that holds it: one experiment's, or all of a
    sweep's. A call may start only if what they have spent, plus every call in flight at its
    worst case, plus this call's worst case stays within the limit; once that fails, it
    stays exceeded for all of them."""

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.gateways: list[CallGateway] = []
        self.exceeded = False

    def committed(self) -> float:
        return sum(g.control.stats.cost + g.reserved for g in self.gateways)

    def check(self, worst: float) -> None:
        if self.limit_usd is not None and self.committed() + worst > self.limit_usd:
            self.exceeded = True
        if self.exceeded:
            spent = sum(g.control.stats.cost for g in self.gateways)
            raise BudgetExceeded(f"budget of ${self.limit_usd:.2f} reached (spent ${spent:.4f})")


class CallGateway:
    def __init__(
        self,
        provider: Provider,
        control: RunControl,
        *,
        seed: int,
        limiter: Limiter,
        budget_usd: float | None = None,
        budget: Budget | None = None,
        log_call: Callable[[CallRecord], None] = lambda record: None,
        notify: Callable[[Event], None] = lambda event: None,
        replay: dict[str, CallRecord] | None = None,
        sleep: Callable[[float], object] = anyio.sleep,
    ) -> None:
        self.provider = provider
        self.control = control
        self.seed = seed
        self.limiter = limiter
        self.budget = budget or Budget(budget_usd)
        self.budget.gateways.append(self)
        self.log_call = log_call
        self.notify = notify
        self.replay = replay or {}
        self.sleep = sleep
        self.reserved = 0.0  # worst-case cost of this gateway's calls in flight
        self.cost_is_estimate = False
        control.stats.budget_usd = self.budget.limit_usd

    @property
    def budget_exceeded(self) -> bool:
        return self.budget.exceeded

    async def _start(self, request: ChatRequest) -> float:
        """Wait until this attempt may be sent: not paused (pausing while queued in the
        limiter also holds it back), a limiter slot, and room in the budget. Returns the
        worst-case cost reserved for it; the caller releases slot and reservation."""
        while True:
            await self.control.wait_if_paused()
            await self.limiter.acquire()
            if not self.control.paused:
                break
            self.limiter.release()
        try:
            return self._reserve(request)
        except BudgetExceeded:
            self.limiter.release()
            raise

    def _reserve(self, request: ChatRequest) -> float:
        if self.budget.limit_usd is None:
            return 0.0
        worst = self.provider.worst_case_cost(request)
        self.budget.check(worst)
        self.reserved += worst
        return worst

    async def call(self, request: ChatRequest) -> Completion:
        recorded = self.replay.get(request.key)
        if recorded is not None and recorded.reply is not None:
            return Completion(
                text=recorded.reply,
                prompt_tokens=recorded.usage.prompt_tokens,
                completion_tokens=recorded.usage.completion_tokens,
                cost=recorded.cost,
                cost_is_estimate=recorded.cost_is_estimate,
                finish_reason=recorded.finish_reason,
            )
        stats = self.control.stats
        started = time.monotonic()
        cost = 0.0
        last_error: ProviderError | None = None
        rng = None  # the backoff jitter's generator, made only when a retry needs it
        attempt = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                reserved = await self._start(request)
            except BudgetExceeded:
                if last_error is not None:  # attempts were made: they count, and resume sees them
                    self._log(request, attempt - 1, None, cost, started,
                              f"{last_error.message}; then stopped by the budget")
                raise
            stats.in_flight += 1
            stats.calls += 1
            try:
                completion = await self.provider.complete(request)
            except ProviderError as exc:
                last_error = exc
            else:
                cost += completion.cost
                stats.cost += completion.cost
                self.cost_is_estimate |= completion.cost_is_estimate
                self._log(request, attempt, completion, cost, started, None)
                return completion
            finally:
                stats.in_flight -= 1
                self.reserved -= reserved
                self.limiter.release()
            if last_error.fatal:
                self._log(request, attempt, None, cost, started, last_error.message)
                raise FatalCallError(last_error.message)
            if not last_error.retryable or attempt == MAX_ATTEMPTS:
                break
            rng = rng or keyed_rng(self.seed, "backoff", request.key)
            delay = backoff_delay(attempt, last_error.retry_after, rng)
            if last_error.status == 429 or last_error.kind in SLOWS_EVERYONE:
                self.limiter.slow_down(delay)
            stats.retries += 1
            self.notify(CallRetried(key=request.key, attempt=attempt, reason=last_error.message, delay_s=delay))
            await self.sleep(delay)
        assert last_error is not None
        self._log(request, attempt, None, cost, started, last_error.message)
        raise CallFailed(f"{last_error.message} (after {attempt} attempt{'s' * (attempt > 1)})")

    def _log(
        self,
        request: ChatRequest,
        attempts: int,
        completion: Completion | None,
        cost: float,
        started: float,
        error: str | None,
    ) -> None:
        self.log_call(
            CallRecord(
                key=request.key,
                model=request.model,
                attempts=attempts,
                reply=completion.text if completion else None,
                usage=Usage(
                    prompt_tokens=completion.prompt_tokens if completion else 0,
                    completion_tokens=completion.completion_tokens if completion else 0,
                ),
                cost=cost,
                cost_is_estimate=completion.cost_is_estimate if completion else False,
                latency_s=round(time.monotonic() - started, 4),
                error=error,
                time=now_iso(),
                messages=[LoggedMessage(role=m.role, content=m.content) for m in request.messages],
                finish_reason=completion.finish_reason if completion else None,
            )
        )
