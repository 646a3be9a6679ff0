"""The call gateway: retries (counted and reported), fatal errors, the shared 429 hold,
the budget, the pause gate, replay and the call log."""

import math
import time

import anyio
import pytest

from engine.calls import BudgetExceeded, CallFailed, CallGateway, FatalCallError, round_of
from engine.control import RunControl
from engine.events import CallRetried, Event
from engine.limits import Limiter
from engine.models import CallRecord, Usage
from engine.providers.base import ChatRequest, Completion, Message, ProviderError

Outcome = Completion | ProviderError


class ScriptedProvider:
    """Answers each attempt with the next outcome of a per-key script (then succeeds)."""

    name = "scripted"
    simulated = False

    def __init__(
        self,
        script: dict[str, list[Outcome]] | None = None,
        *,
        worst: float = 0.0,
        cost: float = 0.0,
        latency_s: float = 0.0,
    ) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.worst = worst
        self.cost = cost
        self.latency_s = latency_s
        self.sent: list[tuple[str, float]] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.sent.append((request.key, time.monotonic()))
        if self.latency_s:
            await anyio.sleep(self.latency_s)
        queue = self.script.get(request.key, [])
        outcome = queue.pop(0) if queue else Completion(text="COOPERATE", cost=self.cost, cost_is_estimate=True)
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    def worst_case_cost(self, request: ChatRequest) -> float:
        return self.worst

    async def aclose(self) -> None:
        pass


def req(key: str = "k") -> ChatRequest:
    return ChatRequest(key=key, model="m", messages=[Message("user", "hi")], temperature=0.3, max_tokens=10)


def gateway(
    provider, control: RunControl | None = None, **options
) -> tuple[CallGateway, list[Event], list[CallRecord], list[float]]:
    events: list[Event] = []
    records: list[CallRecord] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    options.setdefault("limiter", Limiter(None, 8))
    options.setdefault("sleep", sleep)
    gw = CallGateway(
        provider, control or RunControl(), seed=1, log_call=records.append, notify=events.append, **options
    )
    return gw, events, records, sleeps


def err(
    status: int | None = None,
    *,
    retryable: bool = False,
    fatal: bool = False,
    retry_after: float | None = None,
    kind: str = "provider_error",
    message: str = "boom",
) -> ProviderError:
    return ProviderError(message, status=status, retryable=retryable, fatal=fatal, retry_after=retry_after, kind=kind)


async def test_success_is_logged_with_usage_and_cost():
    provider = ScriptedProvider({"k": [Completion(text="DEFECT", prompt_tokens=5, completion_tokens=1, cost=0.25)]})
    gw, events, records, _ = gateway(provider)
    completion = await gw.call(req())
    assert completion.text == "DEFECT"
    assert gw.control.stats.calls == 1 and gw.control.stats.cost == 0.25
    (record,) = records
    assert (record.key, record.attempts, record.reply, record.error) == ("k", 1, "DEFECT", None)
    assert record.usage == Usage(prompt_tokens=5, completion_tokens=1) and record.cost == 0.25
    assert events == [] and gw.cost_is_estimate is False


async def test_retryable_errors_are_retried_counted_and_reported_with_their_reason():
    provider = ScriptedProvider(
        {
            "k": [
                err(503, retryable=True, message="HTTP 503: overloaded"),
                err(None, retryable=True, kind="timeout", message="no reply (timeout)"),
            ]
        }
    )
    gw, events, records, sleeps = gateway(provider)
    await gw.call(req())
    stats = gw.control.stats
    assert (stats.calls, stats.retries) == (3, 2)
    assert [e.reason for e in events if isinstance(e, CallRetried)] == ["HTTP 503: overloaded", "no reply (timeout)"]
    assert [e.attempt for e in events if isinstance(e, CallRetried)] == [1, 2]
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    assert records[0].attempts == 3 and records[0].reply == "COOPERATE"


async def test_gives_up_after_three_retries():
    provider = ScriptedProvider({"k": [err(500, retryable=True)] * 10})
    gw, events, records, _ = gateway(provider)
    with pytest.raises(CallFailed, match="after 4 attempts"):
        await gw.call(req())
    assert len(provider.sent) == 4  # one call and three retries
    assert gw.control.stats.retries == 3 and len(events) == 3
    assert records[0].attempts == 4 and records[0].reply is None and records[0].error == "boom"


async def test_non_retryable_error_fails_at_once():
    provider = ScriptedProvider({"k": [err(400, message="HTTP 400: bad request")]})
    gw, events, records, sleeps = gateway(provider)
    with pytest.raises(CallFailed, match="HTTP 400"):
        await gw.call(req())
    assert len(provider.sent) == 1 and events == [] and sleeps == []
    assert gw.control.stats.retries == 0


async def test_fatal_error_stops_without_retry():
    provider = ScriptedProvider({"k": [err(401, fatal=True, message="HTTP 401 - check the API key in K")]})
    gw, events, records, _ = gateway(provider)
    with pytest.raises(FatalCallError, match="check the API key in K"):
        await gw.call(req())
    assert len(provider.sent) == 1 and events == []
    assert records[0].error == "HTTP 401 - check the API key in K"


async def test_retry_after_is_used_as_the_delay():
    provider = ScriptedProvider({"k": [err(503, retryable=True, retry_after=7.0)]})
    gw, events, _, sleeps = gateway(provider)
    await gw.call(req())
    assert sleeps == [7.0] and events[0].delay_s == 7.0


async def test_retry_after_is_capped_at_120_s():
    provider = ScriptedProvider({"k": [err(503, retryable=True, retry_after=3600.0)]})
    gw, _, _, sleeps = gateway(provider)
    await gw.call(req())
    assert sleeps == [120.0]


@pytest.mark.parametrize(
    ("error", "slows"),
    [
        (err(429, retryable=True, retry_after=0.3, kind="rate_limit"), True),
        (err(402, retryable=True, retry_after=0.3, kind="in_flight_budget"), True),
        (err(503, retryable=True, retry_after=0.3, kind="server_error"), False),
    ],
    ids=["429", "402-in-flight", "503"],
)
async def test_a_429_holds_back_every_other_call(error, slows):
    provider = ScriptedProvider({"a": [error]})
    gw, _, _, _ = gateway(provider, sleep=anyio.sleep)
    began = time.monotonic()

    async def later() -> None:
        await anyio.sleep(0.05)  # starts after "a" got its 429
        await gw.call(req("b"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(gw.call, req("a"))
        tg.start_soon(later)
    b_sent = next(t for key, t in provider.sent if key == "b")
    if slows:
        assert b_sent - began >= 0.28
    else:
        assert b_sent - began < 0.2


async def test_a_429_storm_ends_with_every_call_succeeding():
    """Ten calls all hit a 429 at once; the shared hold makes them wait, then all succeed."""
    provider = ScriptedProvider(
        {f"k{i}": [err(429, retryable=True, retry_after=0.2, kind="rate_limit")] for i in range(10)}, latency_s=0.02
    )
    gw, events, records, _ = gateway(provider, sleep=anyio.sleep, limiter=Limiter(None, 16))
    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(gw.call, req(f"k{i}"))
    assert all(r.reply == "COOPERATE" for r in records) and len(records) == 10
    assert gw.control.stats.retries == 10 and len(events) == 10
    retried = sorted(t for _, t in provider.sent[10:])
    assert retried[0] - began >= 0.2  # nobody went back before the hold ended ...
    assert retried[-1] - retried[0] < 0.1  # ... and then they went together


async def test_budget_reserves_worst_case_and_stops_scheduling():
    provider = ScriptedProvider(worst=0.4, cost=0.35)
    gw, _, _, _ = gateway(provider, budget_usd=1.0)
    await gw.call(req("a"))  # spent 0 + worst 0.4 <= 1
    await gw.call(req("b"))  # 0.35 + 0.4 <= 1
    with pytest.raises(BudgetExceeded):
        await gw.call(req("c"))  # 0.7 + 0.4 > 1
    assert gw.budget_exceeded and len(provider.sent) == 2
    assert gw.control.stats.cost == pytest.approx(0.7)


async def test_budget_counts_calls_in_flight():
    provider = ScriptedProvider(worst=0.4, cost=0.1, latency_s=0.05)
    gw, _, _, _ = gateway(provider, budget_usd=1.0)
    outcomes: list[str] = []

    async def one(key: str) -> None:
        try:
            await gw.call(req(key))
            outcomes.append("ok")
        except BudgetExceeded:
            outcomes.append("stopped")

    async with anyio.create_task_group() as tg:
        for key in "abc":
            tg.start_soon(one, key)
    assert sorted(outcomes) == ["ok", "ok", "stopped"]  # a third 0.4 in flight would pass 1.0
    assert gw.control.stats.cost <= 1.0 and gw.reserved == pytest.approx(0.0)
    with pytest.raises(BudgetExceeded):  # once reached, it stays reached
        await gw.call(req("d"))


async def test_no_budget_means_no_reservation():
    gw, _, _, _ = gateway(ScriptedProvider(worst=100.0))
    await gw.call(req())
    assert not gw.budget_exceeded


async def test_unknown_cost_marks_the_run_an_estimate():
    gw, _, _, _ = gateway(ScriptedProvider())
    await gw.call(req())
    assert gw.cost_is_estimate


async def test_pause_holds_calls_queued_in_the_limiter():
    control = RunControl()
    limiter = Limiter(rpm=None, max_concurrency=8)
    provider = ScriptedProvider()
    gw, _, _, _ = gateway(provider, control, limiter=limiter)
    limiter.slow_down(0.1)  # the call is queued in the limiter ...
    done = anyio.Event()

    async def run() -> None:
        await gw.call(req())
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(0.02)
        control.pause()  # ... when the user pauses
        await anyio.sleep(0.2)
        assert provider.sent == [] and not done.is_set()
        control.resume()
    assert len(provider.sent) == 1


async def test_an_abort_during_a_pause_sends_counts_and_charges_none_of_the_held_calls():
    """Calls held at the pause gate (a pause, or the run screen's quit and abort questions)
    were never sent: an abort must not count them as calls, log them as cancelled in flight
    or charge their worst case. Only the call really in flight is."""
    control = RunControl()
    provider = ScriptedProvider(worst=0.5, latency_s=10)
    gw, _, records, _ = gateway(provider, control, budget_usd=100.0)

    async def call(key: str) -> None:
        await gw.call(req(key))

    with anyio.CancelScope() as scope:
        control.attach(scope, lambda event: None)
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "sent")
            await anyio.sleep(0.02)
            control.pause()
            for key in ("held1", "held2", "held3"):
                tg.start_soon(call, key)
            await anyio.sleep(0.05)
            assert [key for key, _ in provider.sent] == ["sent"]
            control.abort()
    assert [key for key, _ in provider.sent] == ["sent"]
    assert gw.control.stats.calls == 1 and gw.control.stats.in_flight == 0
    assert [r.key for r in records] == ["sent"] and gw.control.stats.cost == 0.5
    assert gw.reserved == 0


async def test_replayed_call_is_not_sent_again():
    record = CallRecord(
        key="k",
        model="m",
        attempts=1,
        reply="DEFECT",
        usage=Usage(prompt_tokens=3),
        cost=0.5,
        cost_is_estimate=False,
        latency_s=0.1,
    )
    provider = ScriptedProvider()
    gw, _, records, _ = gateway(provider, replay={"k": record})
    completion = await gw.call(req())
    assert completion.text == "DEFECT" and completion.cost == 0.5
    assert provider.sent == [] and records == []


async def test_in_flight_counter_returns_to_zero_after_failures():
    provider = ScriptedProvider({"k": [err(500, retryable=True)] * 4})
    gw, _, _, _ = gateway(provider)
    with pytest.raises(CallFailed):
        await gw.call(req())
    assert gw.control.stats.in_flight == 0


async def test_budget_reached_between_retries_still_logs_the_attempts():
    provider = ScriptedProvider({"k": [err(503, retryable=True)]}, worst=0.6)
    gw, _, records, _ = gateway(provider, budget_usd=1.0)

    async def other_call_spends() -> None:
        gw.control.stats.cost = 0.5  # spent elsewhere while "k" waits to retry

    gw.sleep = lambda seconds: other_call_spends()
    with pytest.raises(BudgetExceeded):
        await gw.call(req("k"))
    assert len(provider.sent) == 1
    (record,) = records
    assert record.key == "k" and record.attempts == 1 and record.reply is None
    assert "stopped by the budget" in record.error and gw.control.stats.calls == 1


# -- every cent counted ---------------------------------------------------------------------------


def empty(cost: float = 0.01, *, estimate: bool = False) -> ProviderError:
    return ProviderError(
        "reply has no content", retryable=True, kind="empty_reply", cost=cost, cost_is_estimate=estimate
    )


class Reports:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def __call__(self, type_: str, message: str, **context) -> None:
        self.lines.append((type_, message, context))


async def test_a_billed_empty_reply_is_counted_and_retried_once():
    """Each empty reply was dropped from the spend and retried 3 times, each also billed."""
    provider = ScriptedProvider({"decision/r2/g1/p1/t0": [empty(0.01), Completion(text="DEFECT", cost=0.02)]})
    report = Reports()
    gw, events, records, _ = gateway(provider, report=report)
    completion = await gw.call(req("decision/r2/g1/p1/t0"))
    stats = gw.control.stats
    assert completion.text == "DEFECT" and completion.cost == 0.02
    assert stats.cost == pytest.approx(0.03) and stats.empty_replies == 1 and stats.calls == 2
    (record,) = records
    assert record.cost == pytest.approx(0.03) and record.empty_replies == 1 and record.attempts == 2
    (line,) = report.lines
    assert line[0] == "empty_reply" and "asking once more" in line[1]
    assert line[2] == {"key": "decision/r2/g1/p1/t0", "round": 2}


async def test_two_empty_replies_end_the_call_and_both_are_paid_for():
    provider = ScriptedProvider({"k": [empty(0.01), empty(0.015), Completion(text="never asked")]})
    report = Reports()
    gw, events, records, _ = gateway(provider, report=report)
    with pytest.raises(CallFailed, match="no content"):
        await gw.call(req())
    assert len(provider.sent) == 2 and gw.control.stats.empty_replies == 2
    assert gw.control.stats.cost == pytest.approx(0.025)
    assert records[0].cost == pytest.approx(0.025) and records[0].reply is None
    assert [line[0] for line in report.lines] == ["empty_reply"] * 2 and "giving up" in report.lines[1][1]


async def test_the_cost_of_failed_attempts_counts_in_the_budget():
    provider = ScriptedProvider({"a": [empty(0.5)]}, worst=0.3, cost=0.1)
    gw, _, _, _ = gateway(provider, budget_usd=1.0)
    for key in "abc":  # spent 0.6 after "a" (0.5 of it for the empty reply), then 0.7, 0.8
        await gw.call(req(key))
    with pytest.raises(BudgetExceeded):
        await gw.call(req("d"))  # 0.8 + 0.3 > 1; without the empty reply's 0.5 it would go on
    assert gw.control.stats.cost == pytest.approx(0.8)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.2])
async def test_a_cost_that_is_not_money_never_reaches_the_counters(bad):
    provider = ScriptedProvider({"k": [empty(bad), Completion(text="C", cost=bad)]})
    gw, _, records, _ = gateway(provider)
    await gw.call(req())
    assert gw.control.stats.cost == 0.0 and records[0].cost == 0.0
    assert records[0].cost_is_estimate and gw.cost_is_estimate


async def test_attempts_that_never_reached_the_server_are_not_api_calls():
    refused = ProviderError("connection failed: ConnectError", retryable=True, kind="connection", reached=False)
    provider = ScriptedProvider({"k": [refused, refused]})
    gw, _, records, _ = gateway(provider)
    await gw.call(req())
    assert gw.control.stats.calls == 1 and gw.control.stats.retries == 0  # one API call: no retry of one
    assert records[0].attempts == 3 and records[0].unsent == 2


async def test_retries_never_outnumber_api_calls():
    """Only API calls after a call's first are retries: a call whose attempts were all refused
    unsent made no call and no retry (it once counted 3 retries of 0 calls)."""
    refused = ProviderError("connection failed: ConnectError", retryable=True, kind="connection", reached=False)
    busy = ProviderError("HTTP 503", retryable=True, kind="http", status=503)
    provider = ScriptedProvider({"k": [refused] * 4, "j": [busy, refused, busy, Completion(text="C")]})
    gw, _, records, _ = gateway(provider)
    with pytest.raises(CallFailed):
        await gw.call(req("k"))
    assert (gw.control.stats.calls, gw.control.stats.retries) == (0, 0)
    await gw.call(req("j"))
    assert (gw.control.stats.calls, gw.control.stats.retries) == (3, 2)
    assert [(r.attempts, r.unsent) for r in records] == [(4, 4), (4, 1)]


async def test_an_attempt_maybe_billed_counts_its_worst_case_as_an_estimate():
    """No reply within the timeout after the request was sent (or a broken connection, or a
    200 that cannot be read): the server may have billed it, so the budget counts the worst
    case rather than $0, and says the figure is an estimate."""
    lost = ProviderError("no reply (timeout)", retryable=True, kind="timeout", billing_unknown=True)
    provider = ScriptedProvider({"k": [lost]}, worst=0.3, cost=0.1)
    gw, _, records, _ = gateway(provider)
    await gw.call(req())
    assert gw.control.stats.cost == pytest.approx(0.4) and records[0].cost == pytest.approx(0.4)
    assert records[0].cost_is_estimate and gw.cost_is_estimate


async def test_the_worst_case_of_lost_attempts_holds_the_budget():
    lost = ProviderError("connection failed: ReadError", retryable=True, kind="connection", billing_unknown=True)
    provider = ScriptedProvider({"a": [lost, lost]}, worst=0.3, cost=0.1)
    gw, _, _, _ = gateway(provider, budget_usd=0.9)
    await gw.call(req("a"))  # 0.3 + 0.3 + 0.1
    with pytest.raises(BudgetExceeded):
        await gw.call(req("b"))  # 0.7 + 0.3 > 0.9; counted at $0 the two lost attempts would let it go
    assert gw.control.stats.cost == pytest.approx(0.7)


async def test_each_failed_attempt_says_why_in_the_call_log():
    provider = ScriptedProvider(
        {
            "k": [
                err(429, retryable=True, message="HTTP 429: slow down"),
                err(502, retryable=True, message="HTTP 502: bad gateway"),
            ]
        }
    )
    gw, _, records, _ = gateway(provider)
    await gw.call(req())
    assert records[0].failures == ["HTTP 429: slow down", "HTTP 502: bad gateway"] and records[0].error is None


async def test_a_fatal_error_waits_for_the_calls_in_flight_and_starts_no_more():
    """A 401 or a credit 402 stops the run, but the attempts already sent are billed: they
    finish and are logged and counted before the error is raised; none starts after it."""

    class Provider(ScriptedProvider):
        async def complete(self, request: ChatRequest) -> Completion:
            self.sent.append((request.key, time.monotonic()))
            if request.key == "fatal":
                await anyio.sleep(0.05)
                raise err(402, fatal=True, message="HTTP 402 - add credits")
            await anyio.sleep(0.3)
            return Completion(text="COOPERATE", cost=0.25)

    provider = Provider()
    gw, _, records, _ = gateway(provider)
    outcomes: list[tuple[str, str]] = []  # in the order they came

    async def call(key: str, after: float = 0.0) -> None:
        await anyio.sleep(after)
        try:
            await gw.call(req(key))
            outcomes.append((key, "answered"))
        except FatalCallError as exc:
            outcomes.append((key, f"fatal: {exc}"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "slow")
        tg.start_soon(call, "fatal")
        tg.start_soon(call, "later", 0.1)  # after the 402: never sent
    fatal = "fatal: HTTP 402 - add credits"
    assert outcomes[0] == ("slow", "answered")  # the error waited for it (a round's task group
    assert sorted(outcomes[1:]) == [("fatal", fatal), ("later", fatal)]  # would cancel it)
    assert [key for key, _ in provider.sent] == ["slow", "fatal"]
    assert sorted(r.key for r in records) == ["fatal", "slow"] and gw.control.stats.cost == pytest.approx(0.25)


async def test_attempts_made_before_a_stop_in_the_backoff_are_logged():
    """Cancelled (an abort) or stopped by a fatal error while waiting to retry: the attempts
    already sent count as calls, so the log has them too (resume asks the call again)."""
    provider = ScriptedProvider({"a": [err(503, retryable=True, message="HTTP 503")], "b": [err(402, fatal=True)]})
    gw, _, records, _ = gateway(provider, sleep=anyio.sleep)  # the real backoff: 0.5-1 s
    with anyio.move_on_after(0.2):
        await gw.call(req("a"))
    (cancelled,) = records
    assert (cancelled.attempts, cancelled.reply, cancelled.error) == (1, None, "HTTP 503; then the run was stopped")
    assert gw.control.stats.retries == 0 == cancelled.attempts - 1  # the retry never made is not counted

    provider = ScriptedProvider({"a": [err(503, retryable=True, message="HTTP 503")], "b": [err(402, fatal=True)]})
    gw, _, records, _ = gateway(provider, sleep=anyio.sleep)
    stopped: list[str] = []

    async def call(key: str, after: float) -> None:
        await anyio.sleep(after)
        with pytest.raises(FatalCallError):
            await gw.call(req(key))
        stopped.append(key)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "a", 0.0)  # fails, then waits to retry
        tg.start_soon(call, "b", 0.1)  # fatal meanwhile
    assert stopped == ["b", "a"]
    by_key = {r.key: r for r in records}
    assert (by_key["a"].attempts, by_key["a"].error) == (1, "HTTP 503; then the run was stopped")
    assert gw.control.stats.calls == 2 == sum(r.attempts for r in records)
    assert gw.control.stats.retries == 0 == sum(r.attempts - 1 for r in records)  # as resume counts them


def test_round_of_a_call_key():
    assert [round_of(k) for k in ("strategy/r3/a1", "decision/r12/g2/p1/t0", "k", "x/y")] == [3, 12, None, None]


@pytest.mark.parametrize(
    "ns",
    [
        1_796_034_610_123_456_789,  # mid-second
        1_796_034_610_999_999_999,  # the last millisecond of a second (truncated, as datetime does)
        1_796_034_611_000_000_000,  # the next second: formatted anew
        951_782_400_000_000_000,  # 2000-02-29, a leap day
        0,
    ],
)
def test_now_iso_writes_what_datetime_isoformat_writes(monkeypatch: pytest.MonkeyPatch, ns: int) -> None:
    from datetime import UTC, datetime

    from engine import calls

    monkeypatch.setattr(calls.time, "time_ns", lambda: ns)
    want = datetime.fromtimestamp(ns // 1000 / 1_000_000, UTC).isoformat(timespec="milliseconds")
    assert calls.now_iso() == want
    assert calls.now_iso() == want  # from the second's cached text


def test_now_iso_follows_the_clock() -> None:
    from datetime import UTC, datetime

    from engine.calls import now_iso

    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(now_iso())
    after = datetime.now(UTC)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamp <= after
