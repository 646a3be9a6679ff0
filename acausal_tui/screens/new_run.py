"""The form that starts a new experiment (or sweep) from the app. Values are checked by the
CLI's own flag parser and the project's one config validator (engine.config.load_config,
via engine.sweep.plan_sweep for a sweep), so a bad value shows the CLI's message for it.
The last values started are remembered in RESULTS_DIR/.acausal-tui-form.json."""

import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Select, Static

from acausal_tui.cli.common import UsageError, build_parser, overrides_from
from acausal_tui.widgets.footer import Footer
from acausal_tui.widgets.text import literal
from engine.conditions import PRESETS
from engine.config import PROVIDERS, Config, ConfigError, load_config, merge
from engine.config import validate as validate_config
from engine.providers.base import Provider
from engine.providers.factory import make_provider
from engine.records import check_budget
from engine.runner import with_seed
from engine.store import check_results_dir
from engine.sweep import DEFAULT_SEEDS, SweepPlan, plan_sweep

STATE_FILE = ".acausal-tui-form.json"
PRESET = ""  # a switch left at the condition's preset
# what a blank field runs: the one validator's defaults (simulated, so no key is needed)
DEFAULTS = validate_config({}, {})
# (field, label, CLI flag or None for a switch, placeholder); the sweep swaps `condition`
# for `conditions` and `seeds`
TEXT_FIELDS: list[tuple[str, str, str, str]] = [
    ("config", "TOML file", "--config", "optional; the fields below win over it"),
    ("agents", "Agents", "--agents", str(DEFAULTS.agents)),
    ("rounds", "Rounds", "--rounds", str(DEFAULTS.rounds)),
    ("seed", "Seed", "--seed", "blank: drawn at start"),
    ("base_url", "Base URL", "--base-url", "provider default"),
    ("main_model", "Main model", "--main-model", DEFAULTS.models.main),
    ("sub_model", "Sub model", "--sub-model", DEFAULTS.models.sub),
    ("rpm", "Requests/min", "--rpm", "no cap"),
    ("max_concurrency", "Concurrency", "--max-concurrency", str(DEFAULTS.provider.max_concurrency)),
    ("max_cost", "Budget USD", "--max-cost", str(DEFAULTS.provider.max_cost_usd)),
    ("results_dir", "Results dir", "--results-dir", ""),
]
SWEEP_FIELDS = [
    ("conditions", "Conditions", "--conditions", "baseline,identity (+switch=value)"),
    ("seeds", "Seeds", "--seeds", str(DEFAULT_SEEDS)),
]
SWITCHES: dict[str, tuple[str, ...]] = {
    "identity": ("on", "off"),
    "labels": ("stable", "shuffled"),
    "on_unparseable": ("random", "cooperate", "defect"),
    "option_order": ("fixed", "shuffled"),
}


def state_path(results_dir: Path) -> Path:
    return results_dir / STATE_FILE


def read_state(results_dir: Path) -> dict[str, str]:
    try:
        data = json.loads(state_path(results_dir).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def write_state(results_dir: Path, values: dict[str, str]) -> None:
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        state_path(results_dir).write_text(json.dumps(values, indent=2))
    except OSError:
        pass  # remembering is a convenience; the run goes on


def argv(kind: str, values: dict[str, str]) -> list[str]:
    """The command line the form stands for (blank fields are left out, as unset flags)."""
    out = [kind]
    selects = [("provider", "", "--provider", "")] + ([] if kind == "sweep" else [("condition", "", "--condition", "")])
    for name, _, flag, _ in TEXT_FIELDS + selects + (SWEEP_FIELDS if kind == "sweep" else []):
        value = values.get(name, "").strip()
        if value:
            out += [flag, value]
    return out


def switches(values: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SWITCHES:
        value = values.get(name, PRESET)
        if value:
            out[name] = {"on": True, "off": False}.get(value, value)
    if values.get("history", "").strip():
        out["history"] = values["history"].strip()
    return out


def validate(kind: str, values: dict[str, str], env: dict[str, str] | None = None) -> Config | SweepPlan:
    """The CLI's checks, in its words: its flag parser (UsageError), then the one config
    validator (ConfigError). Nothing is written."""
    args = build_parser().parse_args(argv(kind, values))
    overrides = overrides_from(args)
    extra = switches(values)
    if extra:
        overrides = merge(overrides, {"switches": extra})
    if kind == "sweep":
        plan = plan_sweep(args.config, overrides, args.conditions, args.seeds, env)
        check_budget([config for _, config in plan.runs()])
        check_results_dir(Path(plan.base.results_dir))
        return plan
    config = with_seed(load_config(args.config, overrides, env))
    check_budget([config])
    check_results_dir(Path(config.results_dir))
    return config


class NewRunScreen(Screen):
    # Its CSS: new_run.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [
        Binding("escape", "back", "Cancel", id="cancel", tooltip="cancel: back without starting"),
        Binding("ctrl+s", "start", "Start", id="start", tooltip="check the values and start"),
    ]

    class Start(Message):
        """Start the form's checked experiment (or sweep) with its providers (one per
        experiment) on its live screen, in place of `form`; the app refuses while a run is
        in progress and says why on the form."""

        def __init__(self, form: "NewRunScreen", target: Config | SweepPlan, providers: list[Provider]) -> None:
            super().__init__()
            self.form, self.target, self.providers = form, target, providers

    def __init__(self, kind: str, results_dir: Path, env: dict[str, str] | None = None) -> None:
        """`kind`: run or sweep. `env`: where API keys are read (default: os.environ)."""
        super().__init__()
        self.kind = kind
        self.results_dir = results_dir
        self.env = env
        self.remembered = read_state(results_dir)

    def compose(self) -> ComposeResult:
        what = "sweep (conditions × seeds)" if self.kind == "sweep" else "experiment"
        yield Static(
            Text.assemble((f"New {what}", "bold"), ("  ctrl+s starts · escape cancels · blank = default", "dim")),
            id="form-title",
        )
        fields = TEXT_FIELDS[:4] + (SWEEP_FIELDS if self.kind == "sweep" else []) + TEXT_FIELDS[4:]
        with VerticalScroll(id="form"):
            if self.kind == "run":
                yield self.select_row("condition", "Condition", [(n, n) for n in PRESETS], DEFAULTS.condition)
            yield self.select_row(
                "provider",
                "Provider",
                [("default: openrouter with a key, else simulated", PRESET), *((p, p) for p in PROVIDERS)],
                PRESET,
            )
            for name, label, _, placeholder in fields:
                default = str(self.results_dir) if name == "results_dir" else ""
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input(
                        self.remembered.get(name, default), placeholder=placeholder, id=f"f-{name}", compact=True
                    )
            for name, options in SWITCHES.items():
                yield self.select_row(
                    name, name.replace("_", " "), [("condition preset", PRESET), *((o, o) for o in options)], PRESET
                )
            with Horizontal(classes="field"):
                yield Label("history")
                yield Input(
                    self.remembered.get("history", ""),
                    placeholder="preset (full | none | last:K)",
                    id="f-history",
                    compact=True,
                )
            yield Static(id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Start", variant="primary", id="form-start", compact=True)
                yield Button("Cancel", id="form-cancel", compact=True)
        yield Footer()

    def select_row(self, name: str, label: str, options: list[tuple[str, str]], default: str) -> Horizontal:
        value = self.remembered.get(name, default)
        if value not in [v for _, v in options]:
            value = default
        return Horizontal(
            Label(label), Select(options, value=value, allow_blank=False, id=f"f-{name}", compact=True), classes="field"
        )

    def values(self) -> dict[str, str]:
        out = {}
        for widget in self.query("Input, Select"):
            if widget.id and widget.id.startswith("f-"):
                value = widget.value
                out[widget.id[2:]] = value if isinstance(value, str) else ""
        return out

    def show_error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(literal(message))

    def action_start(self) -> None:
        values = self.values()
        try:
            target = validate(self.kind, values, self.env)
            providers = self.providers(target)
        except (UsageError, ConfigError) as exc:
            self.show_error(str(exc))
            return
        write_state(self.results_dir, values)
        self.post_message(self.Start(self, target, providers))

    def providers(self, target: Config | SweepPlan) -> list[Provider]:
        """Made here, so a missing API key is a ConfigError shown on the form."""

        def unknown_price(model: str) -> None:
            self.notify(
                f"no price known for model {model!r}: its cost counts as 0 (set provider.prices)",
                severity="warning",
                timeout=10,
                markup=False,
            )

        configs = [c for _, c in target.runs()] if isinstance(target, SweepPlan) else [target]
        return [make_provider(c, self.env, on_unknown_price=unknown_price) for c in configs]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "form-start":
            self.action_start()
        else:
            self.action_back()

    def action_back(self) -> None:
        self.app.pop_screen()
