"""The OpenAI-compatible provider: request shape, cost, and how every failure is classified.

Unit tests use httpx.MockTransport; the fault tests at the end go through the real local
stub server (HTTP on 127.0.0.1)."""

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import quote, quote_plus

import anyio
import httpx
import pytest

from engine.config import Config, ConfigError, Price, ProviderSettings
from engine.pricing import PriceTable
from engine.providers.base import ChatRequest, Message, ProviderError
from engine.providers.factory import make_provider
from engine.providers.httpclient import SharedClient
from engine.providers.openai_compat import OpenAICompatProvider, parse_retry_after
from tests.support import stub_server as stub

KEY = "sk-or-v1-0123456789abcdef-SECRET"
DECISION = "Your strategy:\nCooperate.\n\nCurrent opponent: Opponent A\n\nDecision (COOPERATE/DEFECT):"


def request(model: str = "openai/gpt-4.1-nano", max_tokens: int = 100) -> ChatRequest:
    return ChatRequest(
        key="decision/r1/g1/p1/t0",
        model=model,
        messages=[Message("user", DECISION)],
        temperature=0.3,
        max_tokens=max_tokens,
    )


def ok_body(text: str = "COOPERATE", **usage: object) -> dict:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 2, **usage},
    }


def provider(handler, name: str = "openrouter", key: str | None = KEY, **settings: object) -> OpenAICompatProvider:
    options = {"base_url": "https://api.example.test/v1", "api_key_env": "TEST_KEY", **settings}
    return OpenAICompatProvider(
        ProviderSettings(name=name, **options),  # type: ignore[arg-type]
        api_key=key,
        transport=httpx.MockTransport(handler),
    )


def answer(status: int = 200, body: object = None, headers: dict[str, str] | None = None):
    def handler(req: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=ok_body() if body is None else body, headers=headers)

    return handler


async def failure(handler, name: str = "openrouter", **settings: object) -> ProviderError:
    p = provider(handler, name, **settings)
    try:
        with pytest.raises(ProviderError) as caught:
            await p.complete(request())
    finally:
        await p.aclose()
    return caught.value


# -- the request -----------------------------------------------------------------------------


async def test_openrouter_request_shape_and_exact_cost():
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=ok_body(cost=0.000123))

    p = provider(handler)
    completion = await p.complete(request())
    await p.aclose()
    (req,) = seen
    assert req.method == "POST"
    assert str(req.url) == "https://api.example.test/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["http-referer"] and req.headers["x-title"] == "acausal-tui"
    body = json.loads(req.content)
    assert body == {
        "model": "openai/gpt-4.1-nano",
        "messages": [{"role": "user", "content": DECISION}],
        "temperature": 0.3,
        "max_tokens": 100,
        "usage": {"include": True},
    }
    assert completion.text == "COOPERATE"
    assert (completion.prompt_tokens, completion.completion_tokens) == (40, 2)
    assert completion.cost == 0.000123 and completion.cost_is_estimate is False


async def test_openai_request_has_no_openrouter_extras_and_cost_is_an_estimate():
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=ok_body(cost=9.0))  # a cost field from a non-OpenRouter server is ignored

    p = provider(handler, name="openai", base_url="http://localhost:11434/v1/")
    completion = await p.complete(request())
    await p.aclose()
    (req,) = seen
    assert str(req.url) == "http://localhost:11434/v1/chat/completions"
    assert "http-referer" not in req.headers and "x-title" not in req.headers
    assert "usage" not in json.loads(req.content)
    assert completion.cost == pytest.approx((40 * 0.10 + 2 * 0.40) / 1e6)
    assert completion.cost_is_estimate is True


async def test_no_key_no_authorization_header():
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=ok_body())

    p = provider(handler, name="openai", key=None, api_key_env=None)
    await p.complete(request())
    await p.aclose()
    assert "authorization" not in seen[0].headers


async def test_openrouter_without_usage_cost_falls_back_to_the_price_table():
    p = provider(answer(body=ok_body()))
    completion = await p.complete(request())
    await p.aclose()
    assert completion.cost == pytest.approx((40 * 0.10 + 2 * 0.40) / 1e6)
    assert completion.cost_is_estimate is True


async def test_missing_usage_is_estimated_from_the_text():
    body = {"choices": [{"message": {"role": "assistant", "content": "DEFECT"}, "finish_reason": "stop"}]}
    p = provider(answer(body=body), name="openai")
    completion = await p.complete(request())
    await p.aclose()
    assert completion.prompt_tokens == len(DECISION) // 4
    assert completion.completion_tokens == 1


def test_worst_case_cost_is_prompt_estimate_plus_max_tokens_at_list_price():
    p = provider(answer())
    prompt_tokens = len(DECISION) // 4
    expected = (prompt_tokens * 0.30 + 1000 * 2.50) / 1e6
    assert p.worst_case_cost(request("google/gemini-2.5-flash", 1000)) == pytest.approx(expected)


def test_config_prices_override_and_extend_the_defaults():
    p = provider(
        answer(),
        prices={"openai/gpt-4.1-nano": Price(input=1.0, output=2.0), "local/llama": Price(input=0.5, output=0.5)},
    )
    assert p.prices.cost("openai/gpt-4.1-nano", 1_000_000, 1_000_000) == 3.0
    assert p.prices.cost("local/llama", 2_000_000, 0) == 1.0
    assert p.prices.cost("google/gemini-2.5-flash", 1_000_000, 0) == pytest.approx(0.30)


def test_unknown_model_costs_zero_and_warns_once():
    warned: list[str] = []
    table = PriceTable(on_unknown=warned.append)
    assert table.cost("someone/unknown", 1000, 1000) == 0.0
    assert table.cost("someone/unknown", 5, 5) == 0.0
    assert warned == ["someone/unknown"]


def test_bare_openai_model_id_finds_the_prefixed_price():
    warned: list[str] = []
    table = PriceTable(on_unknown=warned.append)
    assert table.cost("gpt-4.1-mini", 1_000_000, 0) == pytest.approx(0.40)
    assert warned == []


async def test_unknown_model_completion_is_an_estimate_at_zero():
    warned: list[str] = []
    p = OpenAICompatProvider(
        ProviderSettings(name="openai", base_url="http://localhost:8000/v1"),
        api_key=None,
        transport=httpx.MockTransport(answer()),
        on_unknown_price=warned.append,
    )
    completion = await p.complete(request("llama3.2"))
    await p.aclose()
    assert (completion.cost, completion.cost_is_estimate) == (0.0, True)
    assert warned == ["llama3.2"]


# -- classification ---------------------------------------------------------------------------

RETRYABLE = [408, 409, 429, 500, 502, 503, 504, 599]
NOT_RETRIED = [400, 404, 405, 413, 422]


@pytest.mark.parametrize("status", RETRYABLE)
async def test_transient_statuses_are_retryable(status):
    exc = await failure(answer(status, {"error": {"code": status, "message": "try later"}}))
    assert (exc.status, exc.retryable, exc.fatal) == (status, True, False)
    assert "try later" in exc.message


@pytest.mark.parametrize("status", NOT_RETRIED)
async def test_client_errors_are_not_retried_and_not_fatal(status):
    exc = await failure(answer(status, {"error": {"code": status, "message": "bad model id"}}))
    assert (exc.status, exc.retryable, exc.fatal) == (status, False, False)
    assert "bad model id" in exc.message


async def test_401_is_fatal_and_names_the_key_variable():
    exc = await failure(answer(401, {"error": {"code": 401, "message": "No auth credentials found"}}))
    assert exc.fatal and not exc.retryable
    assert "TEST_KEY" in exc.message


async def test_401_without_a_key_variable_says_how_to_set_one():
    exc = await failure(answer(401, {"error": {"message": "unauthorized"}}), name="openai", api_key_env=None)
    assert exc.fatal and "provider.api_key_env" in exc.message


async def test_403_is_fatal():
    exc = await failure(answer(403, {"error": {"code": 403, "message": "Key limit exceeded"}}))
    assert exc.fatal and not exc.retryable and exc.status == 403


async def test_403_moderation_flag_fails_only_that_call():
    metadata = {"reasons": ["violence"], "flagged_input": "…", "provider_name": "p", "model_slug": "m"}
    exc = await failure(answer(403, {"error": {"code": 403, "message": "Input flagged", "metadata": metadata}}))
    assert not exc.fatal and not exc.retryable and exc.kind == "moderation"


async def test_credit_402_is_fatal_and_says_where_to_add_credits():
    body = {
        "error": {"code": 402, "message": "Insufficient credits", "metadata": {"limit_source": "openrouter_credits"}}
    }
    exc = await failure(answer(402, body))
    assert exc.fatal and not exc.retryable
    assert "add credits at https://openrouter.ai/settings/credits" in exc.message


async def test_402_without_metadata_is_fatal():
    exc = await failure(answer(402, {"error": {"code": 402, "message": "Payment required"}}))
    assert exc.fatal


async def test_in_flight_budget_402_is_retryable_with_retry_after():
    body = {
        "error": {
            "code": 402,
            "message": "in-flight budget",
            "metadata": {"limit_source": "openrouter_in_flight_budget"},
        }
    }
    exc = await failure(answer(402, body, {"Retry-After": "3"}))
    assert exc.retryable and not exc.fatal
    assert exc.retry_after == 3.0 and exc.kind == "in_flight_budget"


async def test_in_flight_402_from_a_non_openrouter_server_is_fatal():
    body = {"error": {"code": 402, "message": "x", "metadata": {"limit_source": "openrouter_in_flight_budget"}}}
    exc = await failure(answer(402, body), name="openai")
    assert exc.fatal


async def test_429_carries_retry_after_seconds():
    exc = await failure(answer(429, {"error": {"code": 429, "message": "Rate limit exceeded"}}, {"Retry-After": "7"}))
    assert exc.retryable and exc.retry_after == 7.0 and exc.kind == "rate_limit"


async def test_retry_after_as_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    exc = await failure(
        answer(503, {"error": {"message": "busy"}}, {"Retry-After": format_datetime(when, usegmt=True)})
    )
    assert exc.retry_after is not None and 25 <= exc.retry_after <= 31


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0.25", 0.25),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


async def test_non_json_error_body_uses_the_status():
    exc = await failure(answer(502, b"<html>Bad Gateway</html>"))
    assert exc.retryable and exc.status == 502


# -- errors hidden in a 200 and malformed replies ---------------------------------------------


@pytest.mark.parametrize(
    ("code", "retryable", "fatal"),
    [(429, True, False), (502, True, False), (401, False, True), (400, False, False)],
)
async def test_error_inside_a_200_body_is_classified_by_its_code(code, retryable, fatal):
    exc = await failure(answer(200, {"error": {"code": code, "message": "upstream said no"}}))
    assert (exc.status, exc.retryable, exc.fatal) == (code, retryable, fatal)
    assert "upstream said no" in exc.message


async def test_error_inside_a_200_body_without_a_number_is_retryable():
    exc = await failure(answer(200, {"error": {"code": "server_error", "message": "boom"}}))
    assert exc.retryable and not exc.fatal


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": None},
        {"id": "x"},
        {"choices": [{"message": {"role": "assistant"}, "finish_reason": "stop"}]},
        {"choices": [{"message": {"role": "assistant", "content": None}}]},
        {"choices": [{"message": {"role": "assistant", "content": "  "}}]},
        {"choices": [{"message": {"role": "assistant", "content": "COOP"}, "finish_reason": "error"}]},
        ["not", "an", "object"],
    ],
    ids=["empty", "null", "missing", "no-content", "null-content", "blank", "finish-error", "list"],
)
async def test_malformed_success_replies_are_retryable_errors(body):
    exc = await failure(answer(200, body))
    assert exc.retryable and not exc.fatal


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"choices": [{"message": ', b"\xff\xfe"])
async def test_non_json_or_truncated_200_is_retryable(raw):
    exc = await failure(answer(200, raw))
    assert exc.retryable and exc.kind == "bad_response" and exc.billing_unknown


async def test_finish_reason_error_quotes_the_choice_error():
    body = {"choices": [{"message": {"content": ""}, "finish_reason": "error", "error": {"message": "provider died"}}]}
    exc = await failure(answer(200, body))
    assert exc.retryable and "provider died" in exc.message


# -- transport failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("connection refused"), "connection"),
        (httpx.ReadError("reset"), "connection"),
        (httpx.RemoteProtocolError("peer closed"), "connection"),
        (httpx.ReadTimeout("timed out"), "timeout"),
        (httpx.ConnectTimeout("timed out"), "timeout"),
        (httpx.PoolTimeout("timed out"), "timeout"),
    ],
)
async def test_transport_errors_are_retryable(error, kind):
    def handler(req: httpx.Request) -> httpx.Response:
        raise error

    exc = await failure(handler)
    assert exc.retryable and not exc.fatal and exc.kind == kind
    # sent, then no reply: the server may have billed it (the gateway counts the worst case)
    assert exc.billing_unknown == (exc.reached and kind in ("connection", "timeout"))
    assert exc.billing_unknown == (not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)))


# -- billed but unusable replies, and costs that are not money ----------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 100, "cost": 0.0123}},
        {
            "choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 100, "cost": 0.0123},
        },
        {
            "choices": [{"message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 100, "cost": 0.0123},
        },
        {"id": "x", "usage": {"prompt_tokens": 40, "completion_tokens": 100, "cost": 0.0123}},
    ],
    ids=["no-choices", "null-content-length", "empty-content", "no-choices-key"],
)
async def test_a_billed_reply_without_content_fails_carrying_its_cost(body):
    """Reasoning models that spend max_tokens thinking answer like this, and are billed:
    the cost used to be dropped (35% of a run's spend went missing)."""
    exc = await failure(answer(200, body))
    assert exc.kind == "empty_reply" and exc.retryable
    assert exc.cost == 0.0123 and not exc.cost_is_estimate


async def test_a_billed_error_in_a_200_body_carries_its_cost():
    body = {"error": {"message": "upstream died"}, "usage": {"prompt_tokens": 40, "cost": 0.002}}
    exc = await failure(answer(200, body))
    assert exc.cost == 0.002


async def test_an_empty_reply_without_usage_is_estimated_at_list_price():
    exc = await failure(answer(200, {"choices": [{"message": {"content": ""}}], "usage": {}}))
    assert exc.kind == "empty_reply" and exc.cost_is_estimate
    assert exc.cost == pytest.approx((len(DECISION) // 4 * 0.10 + 1 * 0.40) / 1e6)


async def test_an_unbilled_failure_costs_nothing():
    exc = await failure(answer(503, {"error": {"message": "down"}}))
    assert exc.cost == 0.0 and not exc.cost_is_estimate and not exc.billing_unknown


async def test_bills_above_the_price_table_raise_the_worst_case_by_the_same_markup():
    """OpenRouter billing 3x the table's price (an old table, a dearer upstream) used to
    let a budget be overspent 3x: the worst case now scales by the highest markup seen."""
    listed = (40 * 0.10 + 2 * 0.40) / 1e6
    p = provider(answer(200, ok_body(cost=3 * listed)))
    before = p.worst_case_cost(request())
    completion = await p.complete(request())
    await p.aclose()
    assert completion.cost == pytest.approx(3 * listed) and not completion.cost_is_estimate
    assert p.worst_case_cost(request()) == pytest.approx(3 * before)
    assert p.worst_case_cost(request("anthropic/claude-3.5-haiku")) == p.prices.worst_case(
        "anthropic/claude-3.5-haiku", [DECISION], 100
    )  # per model


async def test_a_resumed_run_learns_the_markup_from_its_logged_bills():
    """Resume once forgot the markup: the first calls after it were reserved at list price
    again, and a budget resumed at $0.06 ended at $0.064 against a server billing 3x."""
    listed = (40 * 0.10 + 2 * 0.40) / 1e6
    p = provider(answer())
    before = p.worst_case_cost(request())
    p.learn_markup([("openai/gpt-4.1-nano", 40, 2, 3 * listed), ("openai/gpt-4.1-nano", 40, 2, 2 * listed)])
    assert p.worst_case_cost(request()) == pytest.approx(3 * before)
    other = provider(answer(), name="openai")  # no bills to learn from: its costs are the table's
    other.learn_markup([("openai/gpt-4.1-nano", 40, 2, 3 * listed)])
    assert other.worst_case_cost(request()) == pytest.approx(before)
    await p.aclose()
    await other.aclose()


async def test_bills_below_the_price_table_leave_the_worst_case_at_list_price():
    p = provider(answer(200, ok_body(cost=1e-9)))
    before = p.worst_case_cost(request())
    await p.complete(request())
    await p.aclose()
    assert p.worst_case_cost(request()) == before


@pytest.mark.parametrize("raw_cost", [b"NaN", b"Infinity", b"-Infinity", b"-0.216", b"1e400", b"true", b'"0.01"'])
async def test_a_cost_that_is_not_money_is_estimated_from_the_price_table(raw_cost):
    """One `usage.cost: NaN` once turned the budget off and wrote `"total_cost": null`; a
    negative one made the budget never bind."""
    raw = (
        b'{"choices": [{"message": {"content": "DEFECT"}, "finish_reason": "stop"}],'
        b' "usage": {"prompt_tokens": 40, "completion_tokens": 2, "cost": ' + raw_cost + b"}}"
    )
    p = provider(answer(200, raw))
    completion = await p.complete(request())
    await p.aclose()
    assert completion.cost == pytest.approx((40 * 0.10 + 2 * 0.40) / 1e6)
    assert completion.cost_is_estimate


@pytest.mark.parametrize("tokens", [10**12, -5, 1.5, "40"])
async def test_absurd_token_counts_are_estimated(tokens):
    p = provider(answer(200, ok_body(prompt_tokens=tokens, completion_tokens=tokens)))
    completion = await p.complete(request())
    await p.aclose()
    assert completion.prompt_tokens == len(DECISION) // 4 and completion.completion_tokens == 2
    assert completion.cost < 1e-3


async def test_a_refused_connection_never_reached_the_server():
    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    def reset(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset")

    assert (await failure(refuse)).reached is False
    assert (await failure(reset)).reached is True


# -- the key never leaks ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 400, 401, 429, 500])
async def test_upstream_text_echoing_the_key_is_redacted(status):
    body = {"error": {"code": status if status != 200 else 500, "message": f"bad key {KEY} (Bearer {KEY})"}}
    exc = await failure(answer(status, body))
    assert KEY not in exc.message and KEY not in str(exc)
    assert "***" in exc.message


async def test_key_in_a_non_json_body_is_redacted():
    exc = await failure(answer(200, f"oops {KEY}".encode()))
    assert KEY not in exc.message


async def test_key_shaped_strings_are_redacted_too():
    exc = await failure(answer(401, {"error": {"message": "Incorrect API key provided: sk-proj-abcd****wxyz"}}))
    assert "sk-proj" not in exc.message


ODD_KEY = "sk-or-v1-ab+cd/ef=0123456789ABCDEFxyz"


@pytest.mark.parametrize(
    "shown",
    [
        ODD_KEY,
        quote(ODD_KEY, safe=""),
        quote_plus(ODD_KEY),
        ODD_KEY[-16:],
        ODD_KEY[3:11],
        "".join(f"%{b:02X}" for b in ODD_KEY.encode()),
        "".join(f"%{b:02x}" for b in ODD_KEY.encode()),
    ],
    ids=["raw", "url", "url-plus", "suffix16", "piece8", "every-byte", "every-byte-lower"],
)
async def test_the_key_is_redacted_in_every_form(shown):
    """A key echoed URL-encoded or as a 16-character suffix once reached stderr, the
    manifest, the result, calls.jsonl and the error log."""
    body = {"error": {"code": 500, "message": f"cannot use credentials {shown} here"}}
    p = provider(answer(500, body), key=ODD_KEY)
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    await p.aclose()
    assert shown not in caught.value.message and "***" in caught.value.message
    assert "cannot use credentials" in caught.value.message


async def test_the_key_is_redacted_from_a_reply_text():
    p = provider(answer(200, ok_body(f"COOPERATE (your key is {KEY})")))
    completion = await p.complete(request())
    await p.aclose()
    assert KEY not in completion.text and KEY[-12:] not in completion.text
    assert completion.text.startswith("COOPERATE")


async def test_long_upstream_text_is_shortened():
    exc = await failure(answer(400, {"error": {"message": "x" * 5000}}))
    assert len(exc.message) < 400


# -- the factory ------------------------------------------------------------------------------


def config(**provider: object) -> Config:
    return Config(provider=ProviderSettings(**provider))  # type: ignore[arg-type]


def test_factory_needs_the_openrouter_key():
    cfg = config(name="openrouter", base_url="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY")
    with pytest.raises(ConfigError, match="OPENROUTER_API_KEY"):
        make_provider(cfg, env={})


def test_factory_needs_a_named_key_variable_for_openai():
    cfg = config(name="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_provider(cfg, env={})


async def test_factory_builds_a_keyless_local_provider():
    cfg = config(name="openai", base_url="http://localhost:11434/v1")
    p = make_provider(cfg, env={})
    assert isinstance(p, OpenAICompatProvider) and p.name == "openai" and not p.simulated
    await p.aclose()


def test_factory_rejects_a_base_url_without_a_scheme():
    with pytest.raises(ConfigError, match="provider.base_url"):
        make_provider(config(name="openai", base_url="localhost:11434/v1"), env={})


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:4000/v1", "http://api.example.com/v1", "http://[2001:db8::1]/v1", "http://127.example.com/v1"],
)
def test_factory_refuses_a_key_over_plain_http_to_a_remote_host(url):
    cfg = config(name="openai", base_url=url, api_key_env="K")
    with pytest.raises(ConfigError, match="--allow-insecure") as caught:
        make_provider(cfg, env={"K": KEY})
    assert KEY not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://localhost/v1",
        "http://[::1]:8080/v1",
        "http://127.5.6.7/v1",
        "https://api.example.com/v1",
    ],
)
async def test_factory_sends_a_key_over_http_to_loopback_or_over_https(url):
    p = make_provider(config(name="openai", base_url=url, api_key_env="K"), env={"K": KEY})
    await p.aclose()


async def test_allow_insecure_lets_a_key_go_over_plain_http():
    cfg = config(name="openai", base_url="http://10.0.0.5/v1", api_key_env="K", allow_insecure=True)
    p = make_provider(cfg, env={"K": KEY})
    await p.aclose()


async def test_no_key_no_refusal_over_plain_http():
    p = make_provider(config(name="openai", base_url="http://10.0.0.5/v1"), env={})
    await p.aclose()


# -- through a real HTTP server ---------------------------------------------------------------


def real(server: stub.StubServer, timeout_s: float = 5.0) -> OpenAICompatProvider:
    settings = ProviderSettings(
        name="openrouter", base_url=server.base_url, api_key_env="TEST_KEY", timeout_s=timeout_s
    )
    return OpenAICompatProvider(settings, api_key=KEY)


async def test_stub_server_happy_path_with_exact_cost(server):
    p = real(server)
    completion = await p.complete(request())
    await p.aclose()
    assert completion.text in ("COOPERATE", "DEFECT")
    assert completion.cost > 0 and not completion.cost_is_estimate
    (seen,) = server.requests
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["x-title"] == "acausal-tui" and "http-referer" in seen.headers
    assert seen.body["usage"] == {"include": True}


@pytest.mark.parametrize(
    ("reply", "kind", "retryable", "fatal"),
    [
        (stub.DROP, "connection", True, False),
        (stub.TRUNCATED, "connection", True, False),
        (stub.INVALID_JSON, "bad_response", True, False),
        (stub.EMPTY_CHOICES, "empty_reply", True, False),
        (stub.rate_limited("2"), "rate_limit", True, False),
        (stub.in_flight_402("1"), "in_flight_budget", True, False),
        (stub.credits_402(), "credits", False, True),
        (stub.error(401, "User not found."), "auth", False, True),
        (stub.error(503, "No instances available", in_body_200=True), "server_error", True, False),
        (stub.error(404, "No endpoints found for model"), "bad_request", False, False),
    ],
    ids=[
        "drop",
        "truncated",
        "invalid-json",
        "empty-choices",
        "429",
        "402-in-flight",
        "402-credits",
        "401",
        "error-in-200",
        "404",
    ],
)
async def test_stub_server_faults(server, reply, kind, retryable, fatal):
    server.queue(reply)
    p = real(server)
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    assert (caught.value.kind, caught.value.retryable, caught.value.fatal) == (kind, retryable, fatal)
    completion = await p.complete(request())  # the next request on the same client works
    await p.aclose()
    assert completion.text in ("COOPERATE", "DEFECT")


async def test_stub_server_slow_reply_times_out(server):
    server.queue(stub.slow(2.0))
    p = real(server, timeout_s=0.2)
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    await p.aclose()
    assert caught.value.kind == "timeout" and caught.value.retryable


async def test_a_trickling_server_is_cut_off_at_the_whole_call_deadline(server):
    """timeout_s used to bound each read: one byte every 150 ms held a call for 51 s at
    timeout_s = 2. The stub here would take about 60 s to send its reply."""
    server.queue(stub.trickle(0.1))
    p = real(server, timeout_s=0.5)
    began = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    elapsed = time.monotonic() - began
    await p.aclose()
    assert caught.value.kind == "timeout" and caught.value.retryable
    assert elapsed < 5  # a hang guard, not a speed figure


async def test_a_trickle_within_the_deadline_is_read_whole(server):
    server.queue(stub.Reply(json=ok_body("DEFECT"), trickle_s=0.001))
    p = real(server, timeout_s=10)
    completion = await p.complete(request())
    await p.aclose()
    assert completion.text == "DEFECT"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_reply_is_read_whole(server, encoding):
    """The client says it accepts gzip and deflate (as httpx does), so a server may compress."""
    server.queue(stub.Reply(json=ok_body("DEFECT"), encoding=encoding), stub.Reply(encoding=encoding))
    p = real(server)
    completion = await p.complete(request())
    billed = await p.complete(request())
    await p.aclose()
    assert completion.text == "DEFECT"
    assert billed.cost > 0 and not billed.cost_is_estimate


@pytest.mark.parametrize("shape", stub.BILLED_EMPTY_SHAPES)
async def test_stub_billed_empty_replies_carry_the_billed_cost(server, shape):
    server.queue(stub.billed_empty(shape, cost=0.0031))
    p = real(server)
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    await p.aclose()
    assert caught.value.kind == "empty_reply" and caught.value.cost == 0.0031 == server.billed


@pytest.mark.parametrize("form", stub.KEY_ECHO_FORMS)
async def test_stub_key_echo_is_redacted_in_every_form(server, form):
    settings = ProviderSettings(name="openrouter", base_url=server.base_url, api_key_env="K")
    p = OpenAICompatProvider(settings, api_key=ODD_KEY)
    server.queue(stub.key_echo(ODD_KEY, form))
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    await p.aclose()
    message = caught.value.message
    assert "upstream rejected credentials" in message and "***" in message
    assert not any(ODD_KEY[i : i + 8] in message for i in range(len(ODD_KEY) - 7))
    assert quote(ODD_KEY, safe="")[-16:] not in message


async def test_stub_server_echoed_key_is_redacted(server):
    server.queue(stub.error(401, f"Invalid key {KEY}"))
    p = real(server)
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    await p.aclose()
    assert KEY not in caught.value.message and caught.value.fatal


async def test_a_connection_the_server_closed_after_its_reply_is_not_used_again(server):
    """A server that closes a kept-alive connection just after its reply (with no
    "Connection: close"): its FIN is in the socket before the next request, though the
    event loop has not handled it (here: the test blocks the loop, as a busy run does).
    The pool looks at the socket itself, so the next request goes on a new connection; it
    used to be sent on the dead one and fail as an attempt (counted, retried after a
    backoff)."""
    server.rule = lambda seen: stub.Reply(close_after=True)
    p = real(server)
    for _ in range(4):
        await p.complete(request())  # raises on a request sent to a closed connection
        time.sleep(0.05)  # the FIN arrives; the loop does not run
    await p.aclose()
    assert server.count == 4


async def test_connections_are_kept_alive_up_to_max_concurrency():
    with stub.StubServer(latency_s=0.2) as server:
        settings = ProviderSettings(
            name="openrouter", base_url=server.base_url, api_key_env="TEST_KEY", max_concurrency=4
        )
        shared = SharedClient(settings.max_concurrency)
        p = OpenAICompatProvider(settings, api_key=KEY, client=shared)
        pool = shared.client.transport
        async with anyio.create_task_group() as tg:
            for _ in range(6):  # more at once than the pool keeps (the limiter normally prevents it)
                tg.start_soon(p.complete, request())
        assert pool.connections == 4  # type: ignore[attr-defined]
        for _ in range(3):
            await p.complete(request())
        assert pool.connections == 4  # type: ignore[attr-defined]  # reused, none new
        await p.aclose()
        assert pool.connections == 0  # type: ignore[attr-defined]
    assert server.count == 9


async def test_concurrent_requests_run_in_parallel_on_the_shared_client():
    with stub.StubServer(latency_s=0.3) as server:
        settings = ProviderSettings(
            name="openrouter", base_url=server.base_url, api_key_env="TEST_KEY", max_concurrency=10
        )
        p = OpenAICompatProvider(settings, api_key=KEY)
        began = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(p.complete, request())
        elapsed = time.monotonic() - began
        await p.aclose()
    assert server.count == 10 and elapsed < 0.55  # one wave, not ten
