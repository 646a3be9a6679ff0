"""Fuzzed bad configuration (TOML files and flags): every case exits 2 with one line on
stderr, no traceback, nothing written, and ends promptly (a hang guard, not a speed test:
the cases issue 10 found hung forever or ran out of memory)."""

import contextlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import config as cfg
from engine.conditions import PRESETS
from tests.support.refusal import refusal


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string (lone surrogates make it malformed TOML)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml(data: dict[str, Any]) -> str:
    """Top-level keys, then one [table] per dict; lists of dicts as [[array]] tables."""
    lines = [
        f"{json.dumps(k)} = {toml_value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))
    ]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"[[{json.dumps(key)}]]")
                lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def outside(low: float | None, high: float | None, integer: bool) -> st.SearchStrategy[Any]:
    """Numbers outside [low, high]; floats also NaN and infinities."""
    parts = []
    if integer:
        if low is not None:
            parts.append(st.integers(max_value=int(low) - 1))
        if high is not None:
            parts.append(st.integers(min_value=int(high) + 1, max_value=10**30))
    else:
        if low is not None:
            parts.append(st.floats(max_value=low, exclude_max=True, allow_nan=False))
        if high is not None:
            parts.append(st.floats(min_value=high, exclude_min=True, allow_nan=False))
        parts.append(st.sampled_from([math.nan, math.inf, -math.inf, 1e300]))
    return st.one_of(parts)


WRONG_TYPE = st.one_of(
    st.lists(st.integers(), max_size=2), st.booleans(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
NUMBERS = {  # path -> (low, high, integer): values outside are refused
    ("agents",): (2, cfg.MAX_AGENTS, True),
    ("rounds",): (1, cfg.MAX_ROUNDS, True),
    ("seed",): (-cfg.MAX_SEED, cfg.MAX_SEED, True),
    ("provider", "rpm"): (1, cfg.MAX_RPM, True),
    ("provider", "max_concurrency"): (1, cfg.MAX_CONCURRENCY, True),
    ("provider", "max_cost_usd"): (None, cfg.MAX_COST_USD, False),
    ("provider", "timeout_s"): (None, cfg.MAX_TIMEOUT_S, False),
    ("provider", "latency_ms"): (0, cfg.MAX_LATENCY_MS, False),
    ("validity", "max_fallback_share"): (0, 1, False),
    ("validity", "max_non_fresh_share"): (0, 1, False),
    ("validity", "max_flagged_share"): (0, 1, False),
}
BAD_URLS = st.one_of(
    st.sampled_from(
        [
            "http://h\r\nX-Injected: 1",
            "http://h\n",
            "http://",
            "http:///v1",
            "https://:80/v1",
            "ftp://example.com",
            "http://h:99999/v1",
            "http://h:0",
            "http://h:port/",
            "http://[::1",
            "localhost:11434/v1",
            "",
            "http://h /v1",
            "http://h\x00/v1",
            "http://h\x1b[2J",
        ]
    ),
    st.builds(lambda port: f"http://127.0.0.1:{port}/v1", st.integers(min_value=65536, max_value=10**12)),
)
NOT_A_PRESET = st.text(max_size=20).filter(lambda t: t not in PRESETS)


def at(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        data = {part: data}
    return data


@st.composite
def bad_config(draw: st.DrawFn) -> dict[str, Any]:
    """A config dict with one thing wrong, by construction."""
    kind = draw(
        st.sampled_from(
            ["number", "wrong_type", "url", "name", "unknown_key", "population", "price", "literal", "history"]
        )
    )
    if kind == "number":
        path = draw(st.sampled_from(sorted(NUMBERS)))
        return at(path, draw(outside(*NUMBERS[path])))
    if kind == "wrong_type":
        path = draw(st.sampled_from(sorted(NUMBERS)))
        return at(path, draw(WRONG_TYPE))
    if kind == "url":
        return {"provider": {"name": draw(st.sampled_from(["openai", "openrouter"])), "base_url": draw(BAD_URLS)}}
    if kind == "name":
        field = draw(st.sampled_from([("models", "main"), ("models", "sub"), ("condition",)]))
        bad = st.one_of(
            st.just(""),
            st.just("  "),
            st.text(min_size=cfg.MAX_NAME_CHARS + 1, max_size=cfg.MAX_NAME_CHARS + 50),
            st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=5), st.text(max_size=5)),
        )
        return at(field, draw(NOT_A_PRESET if field == ("condition",) else bad))
    if kind == "unknown_key":
        key = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in cfg.Config.__struct_fields__))
        return {key: draw(st.integers())}
    if kind == "population":
        count = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=cfg.MAX_AGENTS + 1, max_value=10**12)))
        return {"population": [{"kind": "llm", "count": count}]}
    if kind == "price":
        side = draw(st.sampled_from(["input", "output"]))
        price = {"input": 1.0, "output": 1.0, side: draw(outside(0, cfg.MAX_PRICE_USD, False))}
        return {"provider": {"prices": {"m": price}}}
    if kind == "literal":
        return {"power": {"initial": draw(st.text(max_size=10).filter(lambda t: t not in ("random", "equal")))}}
    return {
        "switches": {
            "history": draw(
                st.text(max_size=12).filter(
                    lambda t: (
                        t not in ("full", "none")
                        and not (t.startswith("last:") and t[5:].isdigit() and t[5:].isascii() and int(t[5:]) >= 1)
                    )
                )
            )
        }
    }


@st.composite
def deep_toml(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=cfg.MAX_TOML_DEPTH + 1, max_value=5_000))
    key = draw(st.sampled_from(["agents", "x", "provider"]))
    if draw(st.booleans()):
        return f"{key} = {'[' * depth}{']' * depth}\n"
    return f"{key} = {'{a = ' * depth}1{'}' * depth}\n"


def run_refused(argv: list[str], workdir: Path) -> None:
    with contextlib.chdir(workdir):
        refusal(argv)


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no .hypothesis/ left in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(data=bad_config())
def test_fuzzed_config_files_are_refused(data):
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "c.toml").write_text(toml(data), errors="surrogatepass")
        run_refused(["run", "--headless", "--config", "c.toml", "--results-dir", "results"], workdir)


@FUZZ
@given(text=deep_toml())
def test_deeply_nested_toml_is_refused(text):
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "c.toml").write_text(text)
        run_refused(["run", "--headless", "--config", "c.toml", "--results-dir", "results"], workdir)


FLAGS = {  # flag -> values it refuses
    "--agents": st.one_of(st.integers(max_value=1), st.integers(min_value=cfg.MAX_AGENTS + 1)).map(str),
    "--rounds": st.one_of(st.integers(max_value=0), st.integers(min_value=cfg.MAX_ROUNDS + 1)).map(str),
    "--seed": st.integers(min_value=cfg.MAX_SEED + 1).map(str),
    "--rpm": st.one_of(st.integers(max_value=0), st.integers(min_value=cfg.MAX_RPM + 1)).map(str),
    "--max-concurrency": st.one_of(
        st.integers(max_value=0), st.integers(min_value=cfg.MAX_CONCURRENCY + 1), st.just("1e9")
    ).map(str),
    "--max-cost": st.one_of(
        st.floats(max_value=0),
        st.floats(min_value=cfg.MAX_COST_USD, exclude_min=True),
        st.sampled_from(["nan", "inf", "-inf", "1e309", "ten"]),
    ).map(str),
    "--provider": st.text(max_size=10).filter(lambda t: t not in cfg.PROVIDERS and not t.startswith("-")),
    "--base-url": BAD_URLS.filter(lambda u: not u.startswith("-")),
    "--main-model": st.sampled_from(["", "   ", "m" * (cfg.MAX_NAME_CHARS + 1), "a\x00b", "a\udcffb", "m\x1b[2J"]),
    "--condition": NOT_A_PRESET.filter(lambda t: not t.startswith("-")),
    "--results-dir": st.sampled_from(["r\x00s", "r\udcff", "\udcfe\udcff/x", "x" * (cfg.MAX_PATH_CHARS + 1)]),
}


@FUZZ
@given(flag=st.sampled_from(sorted(FLAGS)), data=st.data())
def test_fuzzed_flags_are_refused(flag, data):
    value = data.draw(FLAGS[flag])
    extra = ["--provider", "openai"] if flag == "--base-url" else []  # a provider that uses it
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["run", "--headless", *extra, f"{flag}={value}"]
        if flag != "--results-dir":
            argv += ["--results-dir", "results"]
        run_refused(argv, Path(tmp))
