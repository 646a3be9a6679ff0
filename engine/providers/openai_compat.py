"""One client for OpenRouter and every OpenAI-compatible endpoint (OpenAI, Ollama, vLLM,
LM Studio, a LiteLLM proxy): `POST {base_url}/chat/completions` on one HTTP client
(engine.providers.httpclient), shared by all experiments of a sweep.

Each `complete` is exactly one attempt. Every way it can go wrong, including an error
hidden in an HTTP 200 body, becomes a `ProviderError` that says whether another attempt
is worth it (`retryable`) or the run cannot go on (`fatal`); retries, the limiter and
the budget live in `engine.calls`. A reply that was billed but is unusable (no choices,
empty content) still reports its cost, on the error. `timeout_s` bounds the whole attempt,
however slowly the server trickles its bytes. The API key is sent only in the
Authorization header and is cut out (engine.redact) of any upstream text kept."""

import email.utils
import json
import math
import re
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
import msgspec

from engine.config import ProviderSettings
from engine.pricing import PriceTable, estimate_tokens, warn_unknown
from engine.providers import http11
from engine.providers.base import EMPTY_REPLY, ChatRequest, Completion, ProviderError
from engine.providers.httpclient import PooledTransport, SharedClient
from engine.redact import Redactor
from engine.textsafe import encodable

APP_URL = "https://github.com/acausal-tui/acausal-tui"
APP_TITLE = "acausal-tui"
CREDITS_URL = "https://openrouter.ai/settings/credits"
# OpenRouter's 402 for its transient in-flight spending budget (running and recently
# finished paid requests fill it while costs settle) carries this in error.metadata;
# every other 402 (balance, key limit, a single request too large) needs a person.
IN_FLIGHT_LIMIT_SOURCE = "openrouter_in_flight_budget"
MAX_QUOTED = 300  # characters of upstream text kept in an error message
MAX_TOKENS_COUNTED = 10**9  # a larger token count in `usage` is nonsense: estimated instead
E = TypeVar("E", bound=BaseException)
_KEY_SHAPES = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{8,}|Bearer\s+\S+")


class OpenAICompatProvider:
    simulated = False

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        api_key: str | None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: SharedClient | None = None,
        on_unknown_price: Callable[[str], None] = warn_unknown,
    ) -> None:
        """`client`: an HTTP client shared with other providers (the experiments of a
        sweep); without it the provider makes its own, pool sized to max_concurrency."""
        self.name = settings.name or "openai"
        self.openrouter = self.name == "openrouter"
        self.url = f"{(settings.base_url or '').rstrip('/')}/chat/completions"
        self.timeout_s = settings.timeout_s
        self.key_env = settings.api_key_env
        self._redact = Redactor(api_key)
        self.prices = PriceTable(settings.prices, on_unknown=on_unknown_price)
        # model -> the highest ratio of OpenRouter's billed cost to the price table's for the
        # same tokens: the worst case scales by it, so a budget holds when the table is low.
        self.markup: dict[str, float] = {}
        # What every request carries, made once (a shared client carries none of it).
        self._url = httpx.URL(self.url)
        port = self._url.port or (443 if self._url.scheme == "https" else 80)
        self._origin = (self._url.raw_scheme, self._url.raw_host, port)
        self._target = self._url.raw_path  # httpx works it out anew at every read
        host = httpx.Request("POST", self._url).headers["Host"].encode("ascii")
        headers = request_headers(api_key, self.openrouter)
        self._head = [(b"Host", host)] + [(n.encode(), v.encode()) for n, v in headers.items()]
        self._timeouts = httpx.Timeout(settings.timeout_s).as_dict()
        self._shared = client or SharedClient(settings.max_concurrency, transport)
        self._client = self._shared.attach()

    async def aclose(self) -> None:
        await self._shared.detach()

    async def prepare(self, calls: int) -> None:
        """About `calls` requests will be sent at once soon: open their connections now."""
        transport = self._client.transport
        if isinstance(transport, PooledTransport):
            await transport.prepare(self._origin, calls, self.timeout_s)

    def worst_case_cost(self, request: ChatRequest) -> float:
        """Prompt estimate plus max_tokens at list price; for OpenRouter too, since its
        exact cost is only known once the reply is in — times the highest markup its bills
        have shown over the list price for this model."""
        worst = self.prices.worst_case(request.model, (m.content for m in request.messages), request.max_tokens)
        return worst * self.markup.get(request.model, 1.0)

    async def complete(self, request: ChatRequest) -> Completion:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if self.openrouter:
            body["usage"] = {"include": True}
        content = msgspec.json.encode(body)
        headers = [*self._head, (b"Content-Length", b"%d" % len(content))]
        deadline = time.monotonic() + self.timeout_s  # for the whole attempt, not each read
        http_request = http11.Request(b"POST", self._origin, self._target, headers, content, self._timeouts, deadline)
        try:
            response = await self._client.send(http_request)
        except (httpx.TimeoutException, TimeoutError) as exc:
            reached = not isinstance(exc, httpx.ConnectTimeout)
            raise ProviderError(
                f"no reply within {self.timeout_s:g} s (timeout)",
                retryable=True,
                kind="timeout",
                reached=reached,
                billing_unknown=reached,
            ) from None
        except httpx.TransportError as exc:
            if (unverified := _cause(exc, ssl.SSLCertVerificationError)) is not None:
                raise ProviderError(  # a retry cannot fix it: stop the run with what to do
                    f"the TLS certificate of {self._url.host} could not be verified "
                    f"({unverified.verify_message or unverified.reason}) - if the server's "
                    "certificate authority is a private one, point SSL_CERT_FILE at its certificate",
                    fatal=True,
                    kind="tls",
                    reached=False,
                ) from None
            what = type(exc).__name__
            reached = not isinstance(exc, httpx.ConnectError)
            raise ProviderError(
                f"connection failed: {what}: {self._quote(str(exc))}",
                retryable=True,
                kind="connection",
                reached=reached,
                billing_unknown=reached,
            ) from None
        return self._read(request, response)

    # -- reading a reply -------------------------------------------------------------

    def _read(self, request: ChatRequest, response: http11.Response) -> Completion:
        """The completion, or the ProviderError it amounts to; an error raised for a reply
        that carries `usage` carries that reply's cost."""
        try:  # msgspec reads it in a tenth of the time; what it refuses, json may still read
            data = msgspec.json.decode(response.body)
        except msgspec.DecodeError:
            try:  # json's leniencies: NaN, 1e400, a byte-order mark, UTF-16, lone surrogates
                data = json.loads(response.body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
        try:
            return self._parse(request, response, data)
        except ProviderError as exc:
            usage = data.get("usage") if isinstance(data, dict) else None
            if isinstance(usage, dict):
                exc.cost, exc.cost_is_estimate = self._cost(request, usage, "")
            raise

    def _parse(self, request: ChatRequest, response: http11.Response, data: Any) -> Completion:
        retry_header = response.header(b"retry-after")
        retry_after = parse_retry_after(None if retry_header is None else retry_header.decode("latin-1"))
        error = data.get("error") if isinstance(data, dict) else None
        if response.status != 200:
            message, metadata = _error_parts(error)
            if message is None:
                message = response.reason.decode("ascii", "ignore") or "no error message"
            raise self._classify(response.status, message, metadata, retry_after)
        if data is None:  # a 200 that cannot be read may still have been billed
            raise ProviderError(
                f"reply is not valid JSON: {self._quote(response.text)!r}",
                retryable=True,
                kind="bad_response",
                billing_unknown=True,
            )
        if not isinstance(data, dict):
            raise ProviderError("reply is not a JSON object", retryable=True, kind="bad_response", billing_unknown=True)
        if error:  # OpenRouter can put an error inside an HTTP 200 body
            message, metadata = _error_parts(error)
            code = error.get("code") if isinstance(error, dict) else None
            status = code if isinstance(code, int) and not isinstance(code, bool) else None
            if status is None:
                raise ProviderError(
                    f"error in a 200 reply: {self._quote(message or 'no message')}",
                    retryable=True,
                    retry_after=retry_after,
                    kind="upstream_error",
                )
            raise self._classify(status, message or "no message", metadata, retry_after)
        return self._completion(request, data)

    def _completion(self, request: ChatRequest, data: dict[str, Any]) -> Completion:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProviderError("reply has no choices", retryable=True, kind=EMPTY_REPLY)
        choice = choices[0]
        if choice.get("finish_reason") == "error":
            message, _ = _error_parts(choice.get("error"))
            raise ProviderError(
                f"the model stopped with an error: {self._quote(message or 'no message')}",
                retryable=True,
                kind="upstream_error",
            )
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        finish = choice.get("finish_reason")
        if not isinstance(text, str) or not text.strip():
            why = " (cut off at max_tokens)" if finish == "length" else ""
            raise ProviderError(f"reply has no content{why}", retryable=True, kind=EMPTY_REPLY)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt_tokens, completion_tokens = self._tokens(request, usage, text)
        cost, estimate = self._cost(request, usage, text)
        return Completion(
            text=encodable(self._redact(text)),  # a lone surrogate cannot be sent or saved
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
            cost_is_estimate=estimate,
            finish_reason=self._quote(finish) if isinstance(finish, str) else None,
        )

    def _tokens(self, request: ChatRequest, usage: dict[str, Any], text: str) -> tuple[int, int]:
        """(prompt, completion) tokens from `usage`, estimated where absent or nonsense."""
        prompt_tokens = _count(usage.get("prompt_tokens"))
        if prompt_tokens is None:
            prompt_tokens = sum(estimate_tokens(m.content) for m in request.messages)
        completion_tokens = _count(usage.get("completion_tokens"))
        if completion_tokens is None:
            completion_tokens = estimate_tokens(text)
        return prompt_tokens, completion_tokens

    def _cost(self, request: ChatRequest, usage: dict[str, Any], text: str) -> tuple[float, bool]:
        """(USD, is it an estimate): OpenRouter's `usage.cost` when it is a finite number
        >= 0; otherwise (other providers, or NaN, Infinity, a negative or absurd figure)
        the price table's figure for the tokens, marked as an estimate."""
        reported = usage.get("cost")
        listed = self.prices.cost(request.model, *self._tokens(request, usage, text))
        if self.openrouter and _money(reported):
            if _money(listed) and listed > 0 and reported > listed * self.markup.get(request.model, 1.0):
                self.markup[request.model] = reported / listed
            return float(reported), False
        return (listed if _money(listed) else 0.0), True

    def learn_markup(self, bills: "Iterable[tuple[str, int, int, float]]") -> None:
        """The markup over list price that earlier bills showed, as (model, prompt tokens,
        completion tokens, USD billed) — a resumed run's call log — so the worst case of its
        first calls is not reserved at list price again (the budget would not hold)."""
        if not self.openrouter:
            return
        for model, prompt_tokens, completion_tokens, billed in bills:
            listed = self.prices.cost(model, prompt_tokens, completion_tokens)
            if _money(listed) and listed > 0 and _money(billed) and billed > listed * self.markup.get(model, 1.0):
                self.markup[model] = billed / listed

    # -- classifying a failure ---------------------------------------------------------

    def _classify(
        self, status: int, message: str, metadata: dict[str, Any], retry_after: float | None
    ) -> ProviderError:
        quoted = self._quote(message)
        text = f"HTTP {status}: {quoted}"
        if status == 401:
            if self.key_env:
                hint = f"check the API key in the environment variable {self.key_env}"
            else:
                hint = "the server wants an API key: set provider.api_key_env to the variable holding it"
            return ProviderError(f"{text} - {hint}", status=status, fatal=True, kind="auth")
        if status == 402:
            if self.openrouter and metadata.get("limit_source") == IN_FLIGHT_LIMIT_SOURCE:
                return ProviderError(
                    f"{text} (in-flight spending budget full; waiting)",
                    status=status,
                    retryable=True,
                    retry_after=retry_after,
                    kind="in_flight_budget",
                )
            hint = f"add credits at {CREDITS_URL}" if self.openrouter else "check the account's credit"
            return ProviderError(f"{text} - {hint}", status=status, fatal=True, kind="credits")
        if status == 403 and ("reasons" in metadata or "flagged_input" in metadata):
            # OpenRouter's moderation flagged this one prompt: the move falls back, the run goes on
            return ProviderError(f"{text} (input flagged by moderation)", status=status, kind="moderation")
        if status == 403:
            hint = "the key may not be allowed to use this model, or a key or budget limit is spent"
            return ProviderError(f"{text} - {hint}", status=status, fatal=True, kind="forbidden")
        if status in (408, 409, 429) or 500 <= status <= 599:
            kind = "rate_limit" if status == 429 else "server_error"
            return ProviderError(text, status=status, retryable=True, retry_after=retry_after, kind=kind)
        return ProviderError(text, status=status, kind="bad_request")

    def _quote(self, text: str) -> str:
        """Upstream text made safe to show: the key in any form (and anything shaped like
        a key) cut out, shortened to one line."""
        text = _KEY_SHAPES.sub("***", self._redact(text))
        text = " ".join(text.split())
        return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


def request_headers(api_key: str | None, openrouter: bool) -> dict[str, str]:
    """The headers of every chat request: httpx's defaults, JSON, the key, and OpenRouter's
    app attribution."""
    headers = {
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",
        "Connection": "keep-alive",
        "User-Agent": f"python-httpx/{httpx.__version__}",
        "Content-Type": "application/json",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if openrouter:
        headers |= {"HTTP-Referer": APP_URL, "X-Title": APP_TITLE}
    return headers


def _cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of type `kind` in `exc`'s chain of causes."""
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


def _error_parts(error: Any) -> tuple[str | None, dict[str, Any]]:
    """(message, metadata) of an `{"error": …}` object; OpenAI-style or OpenRouter-style."""
    if isinstance(error, str):
        return error, {}
    if not isinstance(error, dict):
        return None, {}
    message = error.get("message")
    metadata = error.get("metadata")
    return (
        message if isinstance(message, str) else None,
        metadata if isinstance(metadata, dict) else {},
    )


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS_COUNTED:
        return value
    return None


def _money(value: Any) -> bool:
    """A usable cost: a number in [0, 1e9) (so never NaN, Infinity, a refund or an int too
    large for a float)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now()
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)
