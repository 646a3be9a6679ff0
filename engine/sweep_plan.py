"""Planning a sweep: the grid of conditions x seeds checked and resolved before anything is
written, each cell's directory name, and the providers its experiments share."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from engine.config import Config, ConfigError, load_config, merge
from engine.providers.base import Provider
from engine.providers.factory import make_provider
from engine.runner import with_seed
from engine.store import new_dated_dir
from engine.sweep_file import SweepRun

MAX_SEEDS = 1000  # --seeds: a larger grid is a typo, not an experiment
DEFAULT_SEEDS = 10
SWITCH_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


@dataclass
class SweepPlan:
    base: Config  # resolved, seed set: the first seed
    configs: dict[str, Config]  # condition label -> its resolved config (seed set per run)
    seeds: list[int]
    shard: tuple[int, int] | None = None  # (I, N): run only the I-th of N slices (engine/shard.py)

    def runs(self) -> list[tuple[SweepRun, Config]]:
        """The grid in order: conditions as given, seeds ascending within each; with a
        shard, only its slice: every N-th cell starting at the I-th."""
        grid = [
            (
                SweepRun(condition=label, seed=seed, directory=run_directory(label, seed)),
                msgspec.structs.replace(config, seed=seed),
            )
            for label, config in self.configs.items()
            for seed in self.seeds
        ]
        if self.shard is None:
            return grid
        index, count = self.shard
        return grid[index - 1 :: count]


def parse_condition(label: str) -> tuple[str, dict[str, Any]]:
    """'identity+labels=shuffled+history=last:2' -> ('identity', {switch: value, ...})."""
    name, *pairs = label.split("+")
    switches: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conditions: {label}: expected switch=value after '+', got {pair!r}")
        value = value.strip()
        switches[key.strip()] = SWITCH_WORDS.get(value.lower(), value)
    return name.strip(), switches


def run_directory(label: str, seed: int) -> str:
    return f"exp_{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}_s{seed}"


def plan_sweep(
    config_path: str | None,
    overrides: dict[str, Any],
    conditions: str,
    seeds: int,
    env: dict[str, str] | None = None,
) -> SweepPlan:
    """Validate everything before anything is written: one ConfigError naming the field."""
    labels = [label.strip() for label in conditions.split(",")]
    if not all(labels):
        raise ConfigError(f"--conditions: empty condition name in {conditions!r}")
    if len(set(labels)) < len(labels):
        raise ConfigError(f"--conditions: a condition is listed twice in {conditions!r}")
    if len({run_directory(label, 0) for label in labels}) < len(labels):
        raise ConfigError(f"--conditions: two conditions give the same directory name in {conditions!r}")
    if seeds < 1:
        raise ConfigError(f"--seeds: must be at least 1 (got {seeds})")
    if seeds > MAX_SEEDS:
        raise ConfigError(f"--seeds: at most {MAX_SEEDS} (got {seeds})")
    base = with_seed(load_config(config_path, overrides, env))
    configs = {}
    for label in labels:
        name, switches = parse_condition(label)
        extra: dict[str, Any] = {"condition": name, "seed": base.seed}
        if switches:
            extra["switches"] = switches
        try:
            configs[label] = load_config(config_path, merge(overrides, extra), env)
        except ConfigError as exc:
            raise ConfigError(f"--conditions: {label}: {exc}") from None
    assert base.seed is not None
    return SweepPlan(base=base, configs=configs, seeds=[base.seed + i for i in range(seeds)])


def make_providers(configs: Sequence[Config], **options: Any) -> list[Provider]:
    """One provider per config (the experiments of a sweep), all on one HTTP client whose
    connection pool is sized to the sweep's shared concurrency limit (the configs share
    their provider settings). ConfigError as make_provider."""
    settings = configs[0].provider if configs else None
    if settings is not None and settings.name != "simulated" and "transport" not in options:
        from engine.providers.openai_compat import SharedClient

        options["client"] = SharedClient(settings.max_concurrency)
    providers = [make_provider(config, **options) for config in configs]
    markup: dict[str, float] = {}  # one for the sweep: a bill any experiment sees raises every one's worst case
    for provider in providers:
        if hasattr(provider, "markup"):
            provider.markup = markup  # type: ignore[attr-defined]
    return providers


def new_sweep_dir(results_dir: Path, now: datetime) -> Path:
    return new_dated_dir(results_dir, "sweep", now)
