"""Bad configuration, one table: every TOML file, flag and environment below exits 2 with
one line that names what is wrong, writes nothing and does not hang. The loader says the
same of each file on its own, and the new-experiment form the same of each value."""

import os
from typing import NamedTuple

import pytest

from acausal_tui.cli.common import UsageError
from acausal_tui.screens import new_run
from engine import config as cfg
from engine.config import ConfigError, load_config
from engine.sweep import MAX_SEEDS
from tests.support.refusal import hang_guard, refusal

POPULATION = '[[population]]\nkind = "llm"\ncount = 2\n'
UNUSABLE_KEY = (
    "provider.api_key_env: the key in OPENROUTER_API_KEY contains spaces or characters that cannot go in an HTTP header"
)
SHARDED = ["--conditions", "baseline,identity", "--seeds", "4", "--agents", "4", "--rounds", "2"]


class Case(NamedTuple):
    """`toml` becomes c.toml, passed with --config; the --results-dir is `results` unless
    `flags` give one. The error line must start with `message`."""

    message: str
    flags: tuple[str, ...]
    toml: str | bytes | None
    command: str
    env: dict[str, str]


def case(
    message: str,
    *flags: str,
    toml: str | bytes | None = None,
    command: str = "run",
    env: dict[str, str] | None = None,
    id: str,
) -> tuple[str, Case]:
    return id, Case(message, flags, toml, command, env or {})


CASES = dict(
    [
        # -- values in a TOML file -------------------------------------------------------------
        case("agents: must be at least 2", toml="agents = 1\n", id="agents_below_2"),
        case("rounds: must be at least 1", toml="rounds = 0\n", id="rounds_below_1"),
        case(
            "provider.name: unknown provider 'acme' (expected one of simulated, openrouter, openai)",
            toml='[provider]\nname = "acme"\n',
            id="unknown_provider",
        ),
        case(
            "population[1].strategy: unknown scripted strategy 'nice' (expected one of always_cooperate,",
            toml='[[population]]\nkind = "scripted"\nstrategy = "nice"\ncount = 2\n',
            id="unknown_strategy",
        ),
        case(
            "population[1].count: must be at least 1",
            toml='[[population]]\nkind = "llm"\ncount = 0\n',
            id="count_not_positive",
        ),
        case(
            "agents: 5 does not equal the population counts' sum 3",
            toml='agents = 5\n[[population]]\nkind = "llm"\ncount = 3\n',
            id="counts_not_summing",
        ),
        case(
            "agents: 6 does not equal the population counts' sum 5",
            toml=f'agents = 6\n{POPULATION}[[population]]\nkind = "scripted"\nstrategy = "grudger"\ncount = 3\n',
            id="counts_of_two_groups_not_summing",
        ),
        case("agnets: unknown key", toml="agnets = 3\n", id="unknown_key"),
        case("provider.rpmm: unknown key", toml="[provider]\nrpmm = 3\n", id="unknown_nested_key"),
        case("rounds: expected int, got str", toml='rounds = "ten"\n', id="wrong_type"),
        case(
            "condition: unknown condition 'telepathy' (expected one of baseline, identity)",
            toml='condition = "telepathy"\n',
            id="unknown_condition",
        ),
        case(
            "provider.latency_ms: must be a finite number, got nan",
            toml="[provider]\nlatency_ms = nan\n",
            id="nan_latency",
        ),
        case(
            "provider.max_cost_usd: must be a finite number, got inf",
            toml="[provider]\nmax_cost_usd = inf\n",
            id="infinite_budget",
        ),
        case(
            "provider.prices.m/x.input: must be a finite number, got nan",
            toml='[provider.prices."m/x"]\ninput = nan\noutput = 1.0\n',
            id="nan_price",
        ),
        case(
            "switches.labels: unknown value 'random' (expected one of stable, shuffled)",
            toml='[switches]\nlabels = "random"\n',
            id="switch_labels",
        ),
        case(
            "switches.on_unparseable: unknown value 'maybe' (expected one of random, cooperate, defect)",
            toml='[switches]\non_unparseable = "maybe"\n',
            id="switch_on_unparseable",
        ),
        case(
            "switches.history: 'last:0' is not full, none or last:K",
            toml='[switches]\nhistory = "last:0"\n',
            id="switch_history_zero",
        ),
        case(
            "switches.history: 'sometimes' is not full",
            toml='[switches]\nhistory = "sometimes"\n',
            id="switch_history_word",
        ),
        case("switches.show_power: expected bool", toml='[switches]\nshow_power = "no"\n', id="switch_show_power"),
        case("switches.identity: expected bool", toml="[switches]\nidentity = 1\n", id="switch_identity"),
        case("switches.colour: unknown key", toml="[switches]\ncolour = true\n", id="unknown_switch"),
        case("population[1].model: model name is empty", toml=f'{POPULATION}model = ""\n', id="empty_group_model"),
        case(
            "population[2].sub_model: model name is empty",
            toml=f'{POPULATION}{POPULATION}sub_model = "  "\n',
            id="blank_group_sub_model",
        ),
        case("models.main: model name is empty", toml='[models]\nmain = ""\n', id="empty_main_model"),
        case("models.sub: model name is empty", toml='[models]\nsub = ""\n', id="empty_sub_model"),
        case(
            "population[1]: scripted agents take no model",
            toml='[[population]]\nkind = "scripted"\nstrategy = "grudger"\ncount = 2\nmodel = "x"\n',
            id="scripted_with_model",
        ),
        case(
            "population[1].strategy: only scripted agents take a strategy",
            toml=f'{POPULATION}strategy = "grudger"\n',
            id="llm_with_strategy",
        ),
        case(
            "population[1].strategy: required for scripted agents",
            toml='[[population]]\nkind = "scripted"\ncount = 2\n',
            id="scripted_without_strategy",
        ),
        case(
            "population[1].kind: unknown value 'human' (expected one of llm, scripted)",
            toml='[[population]]\nkind = "human"\ncount = 2\n',
            id="unknown_kind",
        ),
        # -- the file itself -------------------------------------------------------------------
        case("--config: malformed TOML in c.toml: ", toml="agents = [\n", id="malformed_toml"),
        case("--config: c.toml is not UTF-8 text", toml=b"agents = 3\n\xff\xfe\n", id="not_utf8"),
        case(
            f"--config: c.toml is larger than {cfg.MAX_CONFIG_BYTES // 1024} KiB",
            toml="# padding\n" * (cfg.MAX_CONFIG_BYTES // 10 + 1),
            id="huge",
        ),
        case("--config: file not found: missing.toml", "--config", "missing.toml", id="missing"),
        case("--config: is a directory: .", "--config", ".", id="directory"),
        case("--config: not a regular file: /dev/zero", "--config", "/dev/zero", id="dev_zero"),
        case("--config: not a regular file: fifo", "--config", "fifo", id="fifo"),
        # -- flags -----------------------------------------------------------------------------
        case("agents: must be at least 2", "--agents", "1", id="flag_agents_below_2"),
        case("rounds: must be at least 1", "--rounds", "0", id="flag_rounds_below_1"),
        case("provider.name: unknown provider 'acme'", "--provider", "acme", id="flag_unknown_provider"),
        case("argument --agents: expected a whole number, got 'ten'", "--agents", "ten", id="flag_not_a_number"),
        case("unrecognized arguments: --bogus", "--bogus", id="unknown_flag"),
        case("provider.rpm: must be at least 1", "--rpm", "0", id="flag_rpm_zero"),
        case("provider.max_cost_usd: must be greater than 0", "--max-cost", "-1", id="flag_negative_budget"),
        case("argument --max-cost: expected a finite number, got 'nan'", "--max-cost", "nan", id="flag_nan"),
        case("argument --max-cost: expected a finite number, got 'inf'", "--max-cost", "inf", id="flag_inf"),
        case(
            "condition: unknown condition 'Identity' (expected one of baseline, identity)",
            "--condition",
            "Identity",
            id="flag_condition_case",
        ),
        case("models.main: model name is empty", "--main-model", "", id="flag_empty_main_model"),
        case("models.sub: model name is empty", "--sub-model", "", id="flag_empty_sub_model"),
        case("results_dir: file is not a directory", "--results-dir", "file", id="results_dir_is_a_file"),
        # -- API keys (never echoed) -----------------------------------------------------------
        case(
            "provider.api_key_env: environment variable OPENROUTER_API_KEY is not set",
            "--provider",
            "openrouter",
            id="missing_openrouter_key",
        ),
        case(
            "provider.api_key_env: environment variable OPENAI_API_KEY is not set",
            "--provider",
            "openai",
            id="missing_openai_key",
        ),
        case(  # the key pasted where its variable's name goes: refused, and not echoed
            "provider.api_key_env: must name the environment variable that holds the key, not be the key itself "
            "(the value given is not shown)",
            toml='[provider]\nname = "openrouter"\napi_key_env = "sk-or-v1-PASTEDKEY0123456789abcdef"\n',
            id="key_pasted_as_its_variable",
        ),
        *(
            case(UNUSABLE_KEY, "--provider", "openrouter", env={"OPENROUTER_API_KEY": key}, id=name)
            for name, key in [("key_not_ascii", "abc\u00e9"), ("key_with_spaces", "sk key 123"), ("key_blank", "   ")]
        ),
        case(
            "provider.base_url: refusing to send the API key over plain http:// to '192.0.2.7'; use https://, "
            "or pass --allow-insecure",
            "--provider",
            "openrouter",
            "--base-url",
            "http://192.0.2.7/api/v1",
            env={"OPENROUTER_API_KEY": "sk-or-v1-plain-http-0123456789"},
            id="key_over_plain_http",
        ),
        # -- a sweep's flags -------------------------------------------------------------------
        case(
            "--conditions: telepathy: condition: unknown condition 'telepathy' (expected one of baseline, identity)",
            "--conditions",
            "baseline,telepathy",
            command="sweep",
            id="sweep_unknown_condition",
        ),
        case(
            "--conditions: identity+labels=random: switches.labels: unknown value 'random' "
            "(expected one of stable, shuffled)",
            "--conditions",
            "baseline,identity+labels=random",
            command="sweep",
            id="sweep_bad_switch_value",
        ),
        case(
            "--conditions: baseline+history=last:0: switches.history: 'last:0' is not full, none or last:K",
            "--conditions",
            "baseline+history=last:0",
            command="sweep",
            id="sweep_bad_history",
        ),
        case(
            "--conditions: identity+colour=red: switches.colour: unknown key",
            "--conditions",
            "identity+colour=red",
            command="sweep",
            id="sweep_unknown_switch",
        ),
        case(
            "--conditions: identity+labels: expected switch=value after '+'",
            "--conditions",
            "identity+labels",
            command="sweep",
            id="sweep_switch_without_value",
        ),
        case(
            "--conditions: empty condition name in 'baseline,,identity'",
            "--conditions",
            "baseline,,identity",
            command="sweep",
            id="sweep_empty_condition",
        ),
        case(
            "--conditions: a condition is listed twice",
            "--conditions",
            "identity,identity",
            command="sweep",
            id="sweep_condition_twice",
        ),
        case("--seeds: must be at least 1 (got 0)", "--seeds", "0", command="sweep", id="sweep_no_seeds"),
        case(
            f"--seeds: at most {MAX_SEEDS} (got {MAX_SEEDS + 1})",
            "--seeds",
            str(MAX_SEEDS + 1),
            command="sweep",
            id="sweep_too_many_seeds",
        ),
        case(
            "argument --seeds: expected a whole number, got 'many'",
            "--seeds",
            "many",
            command="sweep",
            id="sweep_seeds_not_a_number",
        ),
        case(
            "--condition: a sweep takes --conditions A,B,...",
            "--condition",
            "identity",
            command="sweep",
            id="sweep_single_condition",
        ),
        case("models.main: model name is empty", "--main-model", "", command="sweep", id="sweep_empty_main_model"),
        case(
            "agents: 3 does not equal the population counts' sum 2",
            "--agents",
            "3",
            toml=POPULATION,
            command="sweep",
            id="sweep_flag_against_population",
        ),
        case("--shard: ", *SHARDED, "--shard", "4/3", command="sweep", id="sweep_shard_out_of_range"),
        # a value starting with "-": our message, not argparse's "expected one argument"
        case("--shard: expected I/N", *SHARDED, "--shard", "-1/3", command="sweep", id="sweep_shard_negative"),
        case("--shard: expected I/N", *SHARDED, "--sha", "-1/3", command="sweep", id="sweep_shard_negative_abbrev"),
    ]
)


def argv(case: Case) -> list[str]:
    out = [case.command, "--headless", *case.flags]
    if case.toml is not None:
        out += ["--config", "c.toml"]
    return out if "--results-dir" in case.flags else [*out, "--results-dir", "results"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty directory to run in, with no API key in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return tmp_path


def write(case: Case) -> None:
    """The files `case` names, in the current directory."""
    if case.toml is not None:
        with open("c.toml", "wb") as file:
            file.write(case.toml if isinstance(case.toml, bytes) else case.toml.encode())
    if "fifo" in case.flags:
        os.mkfifo("fifo")
    if "file" in case.flags:
        with open("file", "w") as file:
            file.write("x")


@pytest.mark.parametrize("name", CASES)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(workdir, monkeypatch, name):
    case = CASES[name]
    write(case)
    for variable, value in case.env.items():
        monkeypatch.setenv(variable, value)
    said = refusal(argv(case))
    assert said.startswith(case.message), said
    assert not any(value.strip() and value.strip() in said for value in case.env.values())  # a key is never echoed


FILES = [
    name
    for name, case in CASES.items()
    if case.command == "run" and (case.flags[:1] == ("--config",) or (case.toml is not None and not case.flags))
]


@pytest.mark.parametrize("name", FILES)
def test_the_loader_says_the_same_of_each_file(workdir, name):
    case = CASES[name]
    write(case)
    with hang_guard(), pytest.raises(ConfigError) as caught:
        load_config("c.toml" if case.toml is not None else case.flags[1], {}, env={})
    assert str(caught.value).startswith(case.message)


FORM_FIELDS = {  # the form's fields by command: flag -> field (the provider's key is asked for at start)
    "run": {flag: name for name, _, flag, _ in new_run.TEXT_FIELDS} | {"--condition": "condition"},
    "sweep": {flag: name for name, _, flag, _ in new_run.TEXT_FIELDS + new_run.SWEEP_FIELDS},
}
FORM = [
    name
    for name, case in CASES.items()
    if all(flag in FORM_FIELDS[case.command] for flag in case.flags[::2])
    and all(value.strip() for value in case.flags[1::2])
]  # a blank field is a flag left out


@pytest.mark.parametrize("name", FORM)
def test_the_form_says_the_same_of_each_value(workdir, name):
    case = CASES[name]
    write(case)
    fields = FORM_FIELDS[case.command]
    values = {fields[flag]: value for flag, value in zip(case.flags[::2], case.flags[1::2], strict=True)}
    values.setdefault("results_dir", "results")
    if case.toml is not None:
        values["config"] = "c.toml"
    with pytest.raises((ConfigError, UsageError)) as caught:
        new_run.validate(case.command, values, case.env)
    assert str(caught.value).startswith(case.message)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "KEY-1",
        "my.key",
        "OPENROUTER_API_KEY_2",
        "key",
        "HF_TOKEN",
        "GSK_TOKEN",
        "my_openrouter_key_2024",
    ],
)
def test_any_variable_name_is_accepted_as_api_key_env(name):
    """Only a key pasted in its place is refused: names with '-' or '.', or an empty one (the
    default variable), worked before and still do."""
    from engine.config import load_config

    config = load_config(
        None, {"provider": {"name": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": name}}, {}
    )
    assert config.provider.name == "openai"


@pytest.mark.parametrize(
    "key",
    [
        "sk-or-v1-0123456789abcdef0123456789abcdef",
        "pplx-AbCd0123456789EfGh0123456789",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "AIzaSyA0123456789",
        "sk_riGp_58WAm-dX3a5IDnOdcdbWB2dC4_DSDC6Lc1mxLp",
        "ghp_" + "A1b2" * 9,
    ],
)
def test_a_key_pasted_as_api_key_env_is_refused_unseen(key):
    from engine.config import ConfigError, load_config

    with pytest.raises(ConfigError) as caught:
        load_config(None, {"provider": {"name": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": key}}, {})
    assert "not be the key itself" in str(caught.value) and key not in str(caught.value)
