"""Experiment settings: msgspec Structs decoded from TOML and CLI flags, validated with
messages that name the field in the file's own terms."""

import math
import os
import re
import stat
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from engine.agents.scripted import STRATEGIES
from engine.conditions import resolve_condition
from engine.errors import ConfigError

DEFAULT_MAIN_MODEL = "google/gemini-2.5-flash"
DEFAULT_SUB_MODEL = "openai/gpt-4.1-nano"
PROVIDERS = ("simulated", "openrouter", "openai")
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"


# Upper bounds of every number (docs/reliability.md lists them): far above any
# real experiment, low enough that nothing allocates or sleeps absurdly before refusing.
MAX_AGENTS = 1_000  # agents, and each population count (N(N-1)/2 games per round)
MAX_ROUNDS = 1_000
MAX_SEED = 2**63 - 1  # and at least -MAX_SEED
MAX_RPM = 1_000_000
MAX_CONCURRENCY = 1_024
MAX_COST_USD = 1_000_000.0
MAX_TIMEOUT_S = 3_600.0
MAX_LATENCY_MS = 600_000.0  # simulated provider: 10 minutes per call
MAX_PRICE_USD = 100_000.0  # per million tokens
MAX_NAME_CHARS = 300  # model ids, condition, history switch, env variable name
MAX_URL_CHARS = 2_000
MAX_PATH_CHARS = 4_096
MAX_GROUPS = 1_000  # [[population]] tables
MAX_PRICES = 1_000  # [provider.prices] entries
MAX_CONFIG_BYTES = 1 << 20  # a TOML config file
MAX_TOML_DEPTH = 32  # nested arrays/tables in a TOML file

Name = Annotated[str, Meta(max_length=MAX_NAME_CHARS)]
# What no variable's name is: spaces, "=", control characters; or what API keys look like:
# their vendors' prefixes (sk-…, sk_…, sk-or-v1-…, AIza…, hf_…, gsk_…, ghp_…, xai-…, pplx-…), or
# 32 and more letters and digits with lower case and no underscore (a hex or base64 key).
# HF_TOKEN, GSK_TOKEN, my.key, KEY-1, myOpenRouterApiKeyForProd2 are names.
_NOT_A_VARIABLE = re.compile(
    r"[\s=\x00-\x1f\x7f]|^(?:sk|pk|rk)[-_]|^(?:AIza|xai-|nvapi-|pplx-|r8_|ghp_|gho_|github_pat_|glpat-)"
    r"|^(?:hf|gsk|fw)_[A-Za-z0-9]{30,}|^(?=[^_]*$)(?=.*[a-z])(?=.*\d).{32,}$|^.{65,}"
)
Share = Annotated[float, Meta(ge=0, le=1)]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1: refused in every text setting


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Price(Settings):
    input: Annotated[float, Meta(ge=0, le=MAX_PRICE_USD)]  # USD per million prompt tokens
    output: Annotated[float, Meta(ge=0, le=MAX_PRICE_USD)]  # USD per million completion tokens


class ProviderSettings(Settings):
    name: Name | None = None  # None: openrouter if OPENROUTER_API_KEY is set, else simulated
    base_url: Annotated[str, Meta(max_length=MAX_URL_CHARS)] | None = None
    api_key_env: Name | None = None
    rpm: Annotated[int, Meta(ge=1, le=MAX_RPM)] | None = None  # None: no requests-per-minute cap
    max_concurrency: Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)] = 16
    max_cost_usd: Annotated[float, Meta(gt=0, le=MAX_COST_USD)] | None = 10.0
    timeout_s: Annotated[float, Meta(gt=0, le=MAX_TIMEOUT_S)] = 60.0  # the whole call, however slowly the reply arrives
    allow_insecure: bool = False  # send the key over plain http:// to a non-loopback host
    latency_ms: Annotated[float, Meta(ge=0, le=MAX_LATENCY_MS)] = 0.0
    simulated_effect: bool = False  # simulated only: the identity statement changes replies
    prices: Annotated[dict[Name, Price], Meta(max_length=MAX_PRICES)] = {}


class ModelSettings(Settings):
    main: Name = DEFAULT_MAIN_MODEL
    sub: Name = DEFAULT_SUB_MODEL


class PowerSettings(Settings):
    initial: Literal["random", "equal"] = "random"
    dynamics: bool = True


class PopulationGroup(Settings):
    kind: Literal["llm", "scripted"]
    count: Annotated[int, Meta(ge=1, le=MAX_AGENTS)]
    strategy: Name | None = None  # scripted only
    model: Name | None = None  # llm only: main model override
    sub_model: Name | None = None  # llm only: sub model override


class Switches(Settings):
    """Per-switch overrides of the chosen condition preset (None: keep the preset's)."""

    identity: bool | None = None
    history: Name | None = None  # full | none | last:K
    labels: Literal["stable", "shuffled"] | None = None
    on_unparseable: Literal["random", "cooperate", "defect"] | None = None
    show_power: bool | None = None
    option_order: Literal["fixed", "shuffled"] | None = None


class ValiditySettings(Settings):
    """Thresholds past which a run is flagged INVALID (SPEC §6)."""

    max_fallback_share: Share = 0.05  # fallback moves / LLM moves
    max_non_fresh_share: Share = 0.10  # carried-over or fallback strategies / LLM strategies
    # fresh strategies whose rule extraction was a guess / fresh LLM strategies; None: reported, not judged
    max_flagged_share: Share | None = None


class Config(Settings):
    agents: Annotated[int, Meta(ge=2, le=MAX_AGENTS)] | None = None
    rounds: Annotated[int, Meta(ge=1, le=MAX_ROUNDS)] = 10
    seed: Annotated[int, Meta(ge=-MAX_SEED, le=MAX_SEED)] | None = None
    condition: Name = "identity"
    switches: Switches = msgspec.field(default_factory=Switches)
    results_dir: Annotated[str, Meta(min_length=1, max_length=MAX_PATH_CHARS)] = "results"
    provider: ProviderSettings = msgspec.field(default_factory=ProviderSettings)
    models: ModelSettings = msgspec.field(default_factory=ModelSettings)
    power: PowerSettings = msgspec.field(default_factory=PowerSettings)
    population: Annotated[list[PopulationGroup], Meta(max_length=MAX_GROUPS)] = []
    validity: ValiditySettings = msgspec.field(default_factory=ValiditySettings)


_BOUND = re.compile(r"^Expected `(\w+)`( of length)? (>=|<=|>) (-?[\d.e+]+)")
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "greater than"}
_UNITS = {"str": " characters", "array": " entries", "object": " entries"}


def _field_path(message: str) -> str:
    """'Expected `int`, got `str` - at `$.provider.rpm`' -> 'provider.rpm: expected int, got str';
    'Expected `int` >= 1 - at `$.rounds`' -> 'rounds: must be at least 1'."""
    match = re.search(r" - at `\$\.?(.*)`$", message)
    text = message[: match.start()] if match else message
    bound = _BOUND.match(text)
    if bound:
        kind, length, op, limit = bound.groups()
        limit = limit.removesuffix(".0")
        unit = _UNITS.get(kind, "") if length else ""
        text = f"must be {_BOUND_WORDS[op]} {limit}{unit}"
        if length and op == ">=" and limit == "1":
            text = "must not be empty"
    text = text.replace("`", "")
    text = text[:1].lower() + text[1:]
    where = match.group(1) if match else ""
    choices = _choices(where) if text.startswith("invalid enum value") else ()
    if choices:
        text = text.replace("invalid enum value", "unknown value") + f" (expected one of {', '.join(choices)})"
    where = re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)) + 1}]", where)
    return f"{where}: {text}" if where else text


def _choices(where: str) -> tuple[str, ...]:
    """The allowed values of the Literal field at `where` (e.g. 'switches.labels'), if any."""
    type_: Any = Config
    for part in re.sub(r"\[\d+\]", "", where).split("."):
        type_ = typing.get_type_hints(type_).get(part) if isinstance(type_, type) else None
        while typing.get_origin(type_) in (list, typing.Union, types.UnionType):
            type_ = next(arg for arg in typing.get_args(type_) if arg is not type(None))
    return typing.get_args(type_) if typing.get_origin(type_) is Literal else ()


def _check_values(value: Any, where: str = "", depth: int = 0) -> None:
    """What msgspec types cannot say: no NaN or infinity, no NUL, control characters or
    undecodable bytes (lone surrogates, as non-UTF-8 command-line bytes arrive) in any
    text, no absurd nesting."""
    if depth > MAX_TOML_DEPTH:
        top = re.split(r"[.\[]", where)[0] or "config"
        raise ConfigError(f"{top}: nested more than {MAX_TOML_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value}")
    if isinstance(value, str):
        if "\0" in value:
            raise ConfigError(f"{where}: contains a NUL character")
        if any("\ud800" <= c <= "\udfff" for c in value):
            raise ConfigError(f"{where}: is not valid UTF-8 text")
        if _CONTROL.search(value):  # would act on a terminal wherever the value is shown
            raise ConfigError(f"{where}: contains control characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, where or "config", depth + 1)
            _check_values(item, f"{where}.{key}" if where else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value, start=1):
            _check_values(item, f"{where}[{index}]", depth + 1)


def _convert(data: dict[str, Any]) -> Config:
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        message = str(exc)
        unknown = re.match(r"Object contains unknown field `(.+?)`(?: - at `\$\.?(.*)`)?$", message)
        if unknown:
            where = (unknown.group(2) + "." if unknown.group(2) else "") + unknown.group(1)
            where = re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)) + 1}]", where)
            raise ConfigError(f"{where}: unknown key") from None
        raise ConfigError(_field_path(message)) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML config file: only a regular file (never a FIFO or /dev/zero), at most
    MAX_CONFIG_BYTES, nested at most MAX_TOML_DEPTH deep."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"--config: not a regular file: {path}")
            data = file.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"--config: {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        return tomllib.loads(data.decode())
    except FileNotFoundError:
        raise ConfigError(f"--config: file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"--config: is a directory: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config: {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: malformed TOML in {path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"--config: {path} is nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` (CLI flags) over `base` (the file); flags win."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Config:
    """Read the TOML file (if any), apply CLI overrides, validate and resolve defaults."""
    data = read_toml(path) if path else {}
    return validate(merge(data, overrides or {}), env)


def validate(data: dict[str, Any] | Config, env: Any = None) -> Config:
    """The one validator of settings (TOML file, flags, a manifest's config, a form):
    ConfigError naming the field unless every value is in range (the bounds above) and
    the cross-field rules hold; fills in what defaults depend on (provider, agents,
    population). The returned Config is what the manifest records. The seed, if omitted,
    is drawn by the runner at start."""
    if isinstance(data, Config):
        data = msgspec.to_builtins(data)
    _check_values(data)
    return _resolve(_convert(data), os.environ if env is None else env)


def _check_base_url(url: str) -> None:
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError("provider.base_url: contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number in 0..65535
    except ValueError as exc:
        raise ConfigError(f"provider.base_url: {exc} in {url!r}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"provider.base_url: expected an http:// or https:// URL, got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"provider.base_url: no host in {url!r}")
    if port == 0:
        raise ConfigError(f"provider.base_url: port 0 in {url!r}")


def _resolve(config: Config, env: Any) -> Config:
    """Cross-field rules and defaults that depend on other fields."""
    provider = config.provider
    name = provider.name
    if name is None:
        name = "openrouter" if env.get("OPENROUTER_API_KEY") else "simulated"
    if name not in PROVIDERS:
        raise ConfigError(f"provider.name: unknown provider {name!r} (expected one of {', '.join(PROVIDERS)})")
    base_url = provider.base_url
    key_env = provider.api_key_env
    if key_env and _NOT_A_VARIABLE.search(key_env):
        # Not echoed: what is pasted here is most often the key itself, which must never be
        # written to a file or a screen (the manifest records this setting).
        raise ConfigError(
            "provider.api_key_env: must name the environment variable that holds the key, not be the key "
            "itself (the value given is not shown)"
        )
    if name == "openrouter":
        base_url = base_url or OPENROUTER_BASE_URL
        key_env = key_env or "OPENROUTER_API_KEY"
    elif name == "openai":
        base_url = base_url or OPENAI_BASE_URL
        if base_url.rstrip("/") == OPENAI_BASE_URL:  # OpenAI itself needs a key; local servers may not
            key_env = key_env or "OPENAI_API_KEY"
    if base_url is not None:
        _check_base_url(base_url)
    if not config.models.main.strip():
        raise ConfigError("models.main: model name is empty")
    if not config.models.sub.strip():
        raise ConfigError("models.sub: model name is empty")

    population = list(config.population)
    for index, group in enumerate(population, start=1):
        where = f"population[{index}]"
        if group.kind == "scripted":
            if group.strategy is None:
                raise ConfigError(f"{where}.strategy: required for scripted agents")
            if group.strategy not in STRATEGIES:
                raise ConfigError(
                    f"{where}.strategy: unknown scripted strategy {group.strategy!r} "
                    f"(expected one of {', '.join(STRATEGIES)})"
                )
            if group.model is not None or group.sub_model is not None:
                raise ConfigError(f"{where}: scripted agents take no model")
        else:
            if group.strategy is not None:
                raise ConfigError(f"{where}.strategy: only scripted agents take a strategy")
            for field in ("model", "sub_model"):
                value = getattr(group, field)
                if value is not None and not value.strip():
                    raise ConfigError(f"{where}.{field}: model name is empty")
    agents = config.agents
    if population:
        total = sum(group.count for group in population)
        if agents is not None and agents != total:
            raise ConfigError(f"agents: {agents} does not equal the population counts' sum {total}")
        if total > MAX_AGENTS:
            raise ConfigError(f"population: {total} agents in all; at most {MAX_AGENTS}")
        agents = total
    elif agents is None:
        agents = 10
    if agents < 2:
        raise ConfigError(f"agents: must be at least 2 (got {agents})")
    if not population:
        population = [PopulationGroup(kind="llm", count=agents)]
    resolve_condition(config.condition, config.switches)  # raises ConfigError when unknown

    return msgspec.structs.replace(
        config,
        agents=agents,
        population=population,
        provider=msgspec.structs.replace(provider, name=name, base_url=base_url, api_key_env=key_env),
        results_dir=os.path.expanduser(config.results_dir),  # "~/x" is the home's x
    )
