"""Experiment settings: msgspec Structs decoded from TOML and CLI flags, validated with
messages that name the field in the file's own terms."""

import math
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec

DEFAULT_MAIN_MODEL = "google/gemini-2.5-flash"
DEFAULT_SUB_MODEL = "openai/gpt-4.1-nano"
PROVIDERS = ("simulated", "openrouter", "openai")
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"


class ConfigError(Exception):
    """Bad configuration: one line naming the field and the problem."""


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Price(Settings):
    input: float  # USD per million prompt tokens
    output: float  # USD per million completion tokens


class ProviderSettings(Settings):
    name: str | None = None  # None: openrouter if OPENROUTER_API_KEY is set, else simulated
    base_url: str | None = None
    api_key_env: str | None = None
    rpm: int | None = None  # None: no requests-per-minute cap
    max_concurrency: int = 16
    max_cost_usd: float | None = 10.0
    timeout_s: float = 60.0
    latency_ms: float = 0.0
    simulated_effect: bool = False  # simulated only: the identity statement changes replies
    prices: dict[str, Price] = {}


class ModelSettings(Settings):
    main: str = DEFAULT_MAIN_MODEL
    sub: str = DEFAULT_SUB_MODEL


class PowerSettings(Settings):
    initial: Literal["random", "equal"] = "random"
    dynamics: bool = True


class PopulationGroup(Settings):
    kind: Literal["llm", "scripted"]
    count: int
    strategy: str | None = None  # scripted only
    model: str | None = None  # llm only: main model override
    sub_model: str | None = None  # llm only: sub model override


class Switches(Settings):
    """Per-switch overrides of the chosen condition preset (None: keep the preset's)."""

    identity: bool | None = None
    history: str | None = None  # full | none | last:K
    labels: Literal["stable", "shuffled"] | None = None
    on_unparseable: Literal["random", "cooperate", "defect"] | None = None
    show_power: bool | None = None
    option_order: Literal["fixed", "shuffled"] | None = None


class ValiditySettings(Settings):
    """Thresholds past which a run is flagged INVALID (SPEC §6)."""

    max_fallback_share: float = 0.05  # fallback moves / LLM moves
    max_non_fresh_share: float = 0.10  # carried-over or fallback strategies / LLM strategies


class Config(Settings):
    agents: int | None = None
    rounds: int = 10
    seed: int | None = None
    condition: str = "identity"
    switches: Switches = msgspec.field(default_factory=Switches)
    results_dir: str = "results"
    provider: ProviderSettings = msgspec.field(default_factory=ProviderSettings)
    models: ModelSettings = msgspec.field(default_factory=ModelSettings)
    power: PowerSettings = msgspec.field(default_factory=PowerSettings)
    population: list[PopulationGroup] = []
    validity: ValiditySettings = msgspec.field(default_factory=ValiditySettings)


def _field_path(message: str) -> str:
    """'Expected `int`, got `str` - at `$.provider.rpm`' -> 'provider.rpm: expected int, got str'."""
    match = re.search(r" - at `\$\.?(.*)`$", message)
    text = message[: match.start()] if match else message
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
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"--config: file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"--config: is a directory: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config: {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: malformed TOML in {path}: {exc}") from None
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
    return resolve(_convert(merge(data, overrides or {})), os.environ if env is None else env)


def resolve(config: Config, env: Any = None) -> Config:
    """Validate cross-field rules and fill in what defaults depend on (provider, agents,
    population). The returned Config is what the manifest records. The seed, if omitted,
    is drawn by the runner at start."""
    from engine.agents.scripted import STRATEGIES
    from engine.conditions import resolve_condition  # cycle-free: conditions imports Switches

    env = os.environ if env is None else env
    provider = config.provider
    name = provider.name
    if name is None:
        name = "openrouter" if env.get("OPENROUTER_API_KEY") else "simulated"
    if name not in PROVIDERS:
        raise ConfigError(f"provider.name: unknown provider {name!r} (expected one of {', '.join(PROVIDERS)})")
    base_url = provider.base_url
    key_env = provider.api_key_env
    if name == "openrouter":
        base_url = base_url or OPENROUTER_BASE_URL
        key_env = key_env or "OPENROUTER_API_KEY"
    elif name == "openai":
        base_url = base_url or OPENAI_BASE_URL
        if base_url.rstrip("/") == OPENAI_BASE_URL:  # OpenAI itself needs a key; local servers may not
            key_env = key_env or "OPENAI_API_KEY"
    if provider.rpm is not None and provider.rpm < 1:
        raise ConfigError("provider.rpm: must be at least 1")
    if provider.max_concurrency < 1:
        raise ConfigError("provider.max_concurrency: must be at least 1")
    numbers = {"max_cost_usd": provider.max_cost_usd, "timeout_s": provider.timeout_s,
               "latency_ms": provider.latency_ms}
    numbers |= {f"prices.{m}.{side}": getattr(p, side) for m, p in provider.prices.items()
                for side in ("input", "output")}
    for field, value in numbers.items():
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"provider.{field}: must be a finite number, got {value}")
    if provider.max_cost_usd is not None and provider.max_cost_usd <= 0:
        raise ConfigError("provider.max_cost_usd: must be greater than 0")
    if provider.timeout_s <= 0:
        raise ConfigError("provider.timeout_s: must be greater than 0")
    if provider.latency_ms < 0:
        raise ConfigError("provider.latency_ms: must not be negative")
    for model_id, price in provider.prices.items():
        if price.input < 0 or price.output < 0:
            raise ConfigError(f"provider.prices.{model_id}: prices must not be negative")
    if not config.models.main.strip():
        raise ConfigError("models.main: model name is empty")
    if not config.models.sub.strip():
        raise ConfigError("models.sub: model name is empty")
    if config.rounds < 1:
        raise ConfigError("rounds: must be at least 1")

    population = list(config.population)
    for index, group in enumerate(population, start=1):
        where = f"population[{index}]"
        if group.count <= 0:
            raise ConfigError(f"{where}.count: must be at least 1")
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
