"""The one gateway every model call goes through: pause gate, budget, shared limiter,
retries, counters, the call log and (on resume) replay of calls already paid for.

Every cent a provider reports is counted, whether the attempt succeeded or not (a billed
reply without usable content fails but costs); a cost that is not a finite number >= 0
never reaches the counters or the files."""

import math
import time
from collections.abc import Callable
from typing import NoReturn

import anyio
import anyio.lowlevel
import msgspec

from engine.budget import Budget, BudgetExceeded
from engine.control import RunControl
from engine.events import CallRetried, Event
from engine.limits import MAX_ATTEMPTS, Limiter, backoff_delay
from engine.models import CallRecord, LoggedMessage, Usage
from engine.pricing import PriceTable
from engine.providers.base import EMPTY_REPLY, ChatRequest, Completion, Provider, ProviderError
from engine.rng import keyed_rng

# Account-wide conditions: the wait they ask for applies to every call of the run.
SLOWS_EVERYONE = ("rate_limit", "in_flight_budget")
UNKNOWN_PRICE = "unknown_price"  # the error-log type of a model the price table cannot price
STOPPED = "the run was stopped"
CANCELLED = f"cancelled in flight: {STOPPED}"
MAX_EMPTY_REPLIES = 2  # per call: an empty reply is retried once, not three times (each is billed)
Report = Callable[..., None]  # report(type, message, **context): a line in the error log


class CallFailed(Exception):
    """A call that failed after its retries (or a non-retryable error); the run goes on."""


class FatalCallError(Exception):
    """An error that stops the run (bad key, no credit): status `failed`."""


_second: tuple[int, str] = (-1, "")  # the last second now_iso formatted, and its text


def now_iso() -> str:
    """The UTC time to the millisecond, as `datetime.now(UTC).isoformat(timespec=
    "milliseconds")` writes it (2026-11-30T12:30:10.123+00:00), with the date and time of
    the second formatted once per second: a few calls a model call, a third of the cost."""
    global _second
    second, ms = divmod(time.time_ns() // 1_000_000, 1000)
    cached = _second  # one read: another thread may replace it meanwhile
    if second != cached[0]:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{ms:03d}+00:00"


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
        report: Report = lambda type_, message, **context: None,
        replay: dict[str, CallRecord] | None = None,
        sleep: Callable[[float], object] = anyio.sleep,
        prices: PriceTable | None = None,
    ) -> None:
        """`prices`: the provider's price table; each model it cannot price is reported once
        (`report`, type unknown_price), beside whatever the table itself was told to do."""
        self.provider = provider
        self.control = control
        self.seed = seed
        self.limiter = limiter
        self.budget = budget or Budget(budget_usd)
        self.budget.gateways.append(self)
        self.log_call = log_call
        self.notify = notify
        self.report = report
        self.replay = replay or {}
        self.sleep = sleep
        self.reserved = 0.0  # worst-case cost of this gateway's calls in flight
        self.prices = prices
        self.unpriced: set[str] = set()  # the models reported as having no price
        self.fatal: str | None = None  # the error that stops the run: no attempt starts after it
        self._drained = anyio.Event()  # set once a fatal error has no attempt left in flight
        control.stats.budget_usd = self.budget.limit_usd

    @property
    def cost_is_estimate(self) -> bool:
        """Some of what this gateway's run spent is an estimate (its counters say)."""
        return self.control.stats.cost_is_estimate

    @property
    def budget_exceeded(self) -> bool:
        return self.budget.exceeded

    async def _start(self, request: ChatRequest) -> float:
        """Wait until this attempt may be sent: not paused (pausing while queued in the
        limiter also holds it back), a limiter slot, and room in the budget. Returns the
        worst-case cost reserved for it; the caller releases slot and reservation."""
        while True:
            await self.control.wait_if_paused()
            if self.control.aborted:  # woken from a pause by the abort: never sent, so not counted
                await anyio.lowlevel.checkpoint()  # the run's scope is cancelled: raises here
            await self.limiter.acquire()
            if not self.control.paused:
                break
            self.limiter.release()
        if self.fatal is not None:
            self.limiter.release()
            await self._stop()
        try:
            return self._reserve(request)
        except BudgetExceeded:
            self.limiter.release()
            raise
        finally:
            self._report_unpriced()

    def _report_unpriced(self) -> None:
        """Report the models the price table found no price for since the last look."""
        if self.prices is None or len(self.prices.unknown) == len(self.unpriced):
            return
        for model in sorted(self.prices.unknown - self.unpriced):
            self.report(
                UNKNOWN_PRICE,
                f"no price known for model {model!r}: its cost counts as $0 "
                "and the budget cannot bound it (set provider.prices)",
                model=model,
            )
        self.unpriced |= self.prices.unknown

    def _reserve(self, request: ChatRequest) -> float:
        if self.budget.limit_usd is None:
            return 0.0
        worst = self.provider.worst_case_cost(request)
        self.budget.check(worst)
        self.reserved += worst
        return worst

    async def prepare(self, calls: int) -> None:
        """Tell the provider that about `calls` requests will be sent at once soon (an HTTP
        provider opens their connections ahead; others have nothing to prepare)."""
        prepare = getattr(self.provider, "prepare", None)
        if prepare is not None:
            await prepare(calls)

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
        tally = _Tally()
        last_error: ProviderError | None = None
        rng = None  # the backoff jitter's generator, made only when a retry needs it
        attempt = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                reserved = await self._start(request)
            except (BudgetExceeded, FatalCallError, anyio.get_cancelled_exc_class()) as stop:
                if last_error is not None:  # attempts were made: they count, and resume sees them
                    why = "stopped by the budget" if isinstance(stop, BudgetExceeded) else STOPPED
                    self._log(request, attempt - 1, None, tally, started, f"{last_error.message}; then {why}")
                raise
            stats.in_flight += 1
            stats.calls += 1
            try:
                completion = await self.provider.complete(request)
            except ProviderError as exc:
                last_error = exc
                tally.failures.append(exc.message)
                if exc.billing_unknown and not exc.cost:
                    self._charge_worst_case(tally, request)
                else:
                    self._charge(tally, exc.cost, exc.cost_is_estimate)
                if exc.reached:
                    self._sent(tally)
                else:  # refused before the server saw it: not an API call
                    stats.calls -= 1
                    tally.unsent += 1
            except anyio.get_cancelled_exc_class():
                # The run was stopped (abort, a signal) with this attempt in flight: it was
                # counted as a call and may be billed, so it is logged (resume asks it again).
                self._sent(tally)
                tally.failures.append(CANCELLED)
                self._charge_worst_case(tally, request)
                self._log(request, attempt, None, tally, started, CANCELLED)
                raise
            else:
                self._sent(tally)
                completion = msgspec.structs.replace(
                    completion, cost=self._charge(tally, completion.cost, completion.cost_is_estimate)
                )
                self._log(request, attempt, completion, tally, started, None)
                return completion
            finally:
                stats.in_flight -= 1
                if self.fatal is not None and not stats.in_flight:
                    self._drained.set()
                self.reserved -= reserved
                self.limiter.release()
                self._report_unpriced()
            if last_error.fatal:
                self._log(request, attempt, None, tally, started, last_error.message)
                await self._stop(last_error.message)
            if last_error.kind == EMPTY_REPLY:
                tally.empty += 1
                stats.empty_replies += 1
                again = tally.empty < MAX_EMPTY_REPLIES and attempt < MAX_ATTEMPTS
                self.report(
                    EMPTY_REPLY,
                    f"{request.key}: {last_error.message}, billed "
                    f"${last_error.cost:.6f}; {'asking once more' if again else 'giving up'}",
                    key=request.key,
                    round=round_of(request.key),
                )
                if not again:
                    break
            if not last_error.retryable or attempt == MAX_ATTEMPTS:
                break
            rng = rng or keyed_rng(self.seed, "backoff", request.key)
            delay = backoff_delay(attempt, last_error.retry_after, rng)
            if last_error.status == 429 or last_error.kind in SLOWS_EVERYONE:
                self.limiter.slow_down(delay)
            self.notify(CallRetried(key=request.key, attempt=attempt, reason=last_error.message, delay_s=delay))
            try:
                await self.sleep(delay)
            except anyio.get_cancelled_exc_class():
                self._log(request, attempt, None, tally, started, f"{last_error.message}; then {STOPPED}")
                raise
        assert last_error is not None
        self._log(request, attempt, None, tally, started, last_error.message)
        raise CallFailed(f"{last_error.message} (after {attempt} attempt{'s' * (attempt > 1)})")

    async def _stop(self, error: str | None = None) -> NoReturn:
        """Raise the fatal error (the first `error`) once the attempts already sent are
        answered: they are billed, so they are logged and counted, as when the budget stops
        the run. No attempt starts after it."""
        if self.fatal is None:
            self.fatal = error
            if not self.control.stats.in_flight:
                self._drained.set()
        await self._drained.wait()
        raise FatalCallError(self.fatal)

    def _sent(self, tally: "_Tally") -> None:
        """An attempt reached the server: an API call; every one after a call's first is a
        retry (so retries never outnumber calls, whatever attempts were refused unsent)."""
        if tally.sent:
            self.control.stats.retries += 1
        tally.sent += 1

    def _charge_worst_case(self, tally: "_Tally", request: ChatRequest) -> None:
        """An attempt the server may have billed without saying what (lost in flight): its
        worst case counts, as an estimate, so the budget holds (a free model: nothing)."""
        if worst := self.provider.worst_case_cost(request):
            self._charge(tally, worst, True)

    def _charge(self, tally: "_Tally", cost: float, estimate: bool) -> float:
        """Add one attempt's cost to the call's and the run's spend; returns it as counted
        (a NaN, infinite or negative figure counts as 0 and marks the cost an estimate: the
        provider is the place that estimates, this is the last guard)."""
        if not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0):
            cost, estimate = 0.0, True
        tally.cost += cost
        tally.estimate |= estimate
        self.control.stats.cost += cost
        self.control.stats.cost_is_estimate |= estimate
        return float(cost)

    def _log(
        self,
        request: ChatRequest,
        attempts: int,
        completion: Completion | None,
        tally: "_Tally",
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
                cost=tally.cost,
                cost_is_estimate=tally.estimate,
                latency_s=round(time.monotonic() - started, 4),
                error=error,
                time=now_iso(),
                messages=[LoggedMessage(role=m.role, content=m.content) for m in request.messages],
                finish_reason=completion.finish_reason if completion else None,
                empty_replies=tally.empty,
                unsent=tally.unsent,
                failures=tally.failures,
            )
        )


class _Tally:
    """What one call (all its attempts) has cost and how its attempts went."""

    def __init__(self) -> None:
        self.cost = 0.0
        self.estimate = False
        self.empty = 0  # attempts answered billed but empty
        self.unsent = 0  # attempts that never reached the server
        self.sent = 0  # attempts that did: API calls
        self.failures: list[str] = []  # why each failed attempt failed, in order


def round_of(key: str) -> int | None:
    """The round a call key belongs to ("decision/r3/g2/p1/t0" -> 3), for the error log."""
    part = key.split("/")[1] if key.count("/") else ""
    return int(part[1:]) if part[:1] == "r" and part[1:].isdigit() else None
