"""Conditions and switches: each switch changes the rendered prompts, or the protocol,
exactly as documented and nothing else (full prompts compared with and without it)."""

import re
from pathlib import Path

import msgspec
import pytest

from engine.analysis import has_identity_marker
from engine.conditions import (
    FALLBACK_STRATEGY,
    PRESETS,
    Condition,
    history_window,
    resolve_condition,
)
from engine.config import ConfigError, Switches
from engine.game import pairings
from engine.models import GameResult, Manifest
from engine.prompts import IDENTITY_STATEMENT, POWER_FIXED
from engine.rng import keyed_rng
from engine.runner import run_experiment
from engine.store import ExperimentStore, read_json
from tests.support.fakes import FakeProvider

AGENTS, ROUNDS = 4, 4
HISTORY_RE = re.compile(r"Game history so far:\n(.*?)\n\nCurrent opponent", re.S)
POWER_LEVELS_RE = re.compile(r" Power levels: min [\d.]+, average [\d.]+, max [\d.]+\.")
POWER_RATIO_RE = re.compile(r" \(power ratio [\d.]+\)")


def reply(request) -> str:
    """Replies that do not depend on the prompt, so moves are the same under every switch."""
    if request.key.startswith("strategy/"):
        return "I weigh the options.\nSTRATEGY: cooperate unless betrayed"
    return "COOPERATE" if keyed_rng(0, request.key).random() < 0.6 else "DEFECT"


async def prompts_of(make_config, tmp_path: Path, name: str, decide=reply, **overrides):
    """Run an experiment; its first-turn prompts by call key, its games, its directory."""
    overrides.setdefault("agents", AGENTS)
    overrides.setdefault("rounds", ROUNDS)
    config = make_config(results_dir=str(tmp_path / name), **overrides)
    provider = FakeProvider(decide)
    store = ExperimentStore(tmp_path / name / "exp")
    await run_experiment(config, provider=provider, store=store)
    prompts = {
        r.key: r.messages[0].content
        for r in provider.requests
        if not r.key.startswith("decision/") or r.key.endswith("/t0")
    }
    games = [
        g
        for r in range(1, config.rounds + 1)
        for g in read_json(store.directory / "rounds" / f"games_r{r}.json", list[GameResult])
    ]
    return prompts, games, store.directory


def moves(games: list[GameResult]) -> list[tuple[str, str, str]]:
    return [(g.game_id, g.player1_action, g.player2_action) for g in games]


def split(prompts: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    strategy = {k: v for k, v in prompts.items() if k.startswith("strategy/")}
    decision = {k: v for k, v in prompts.items() if k.startswith("decision/")}
    return strategy, decision


def viewer_and_opponent(key: str) -> tuple[int, int, int]:
    """decision/r{r}/g{k}/p{p}/t0 -> (round, viewer, opponent)."""
    r, k, p = (int(x) for x in re.match(r"decision/r(\d+)/g(\d+)/p(\d)/", key).groups())
    i, j = pairings(AGENTS)[k - 1]
    return (r, i, j) if p == 1 else (r, j, i)


# -- presets and resolution --------------------------------------------------------------


def test_presets_differ_only_in_the_identity_statement():
    assert msgspec.structs.replace(PRESETS["baseline"], name="identity", identity=True) == PRESETS["identity"]
    assert PRESETS["identity"] == Condition(
        name="identity", identity=True, history="full", labels="stable", on_unparseable="random", show_power=True
    )


def test_switches_override_the_preset():
    condition = resolve_condition("baseline", Switches(history="last:2", labels="shuffled", show_power=False))
    assert condition == Condition(
        name="baseline", identity=False, history="last:2", labels="shuffled", on_unparseable="random", show_power=False
    )
    assert resolve_condition("baseline", Switches(identity=True)).identity is True


@pytest.mark.parametrize("history, window", [("full", None), ("none", 0), ("last:1", 1), ("last:12", 12)])
def test_history_window(history, window):
    assert history_window(history) == window


@pytest.mark.parametrize("history", ["last:0", "last:-1", "last", "all", "last:two"])
def test_bad_history_is_a_config_error(history):
    with pytest.raises(ConfigError, match=r"^switches\.history: "):
        history_window(history)


async def test_the_manifest_records_the_resolved_condition(make_config, tmp_path):
    switches = {"history": "last:2", "labels": "shuffled", "on_unparseable": "defect", "show_power": False}
    _, _, directory = await prompts_of(make_config, tmp_path, "m", condition="baseline", switches=switches)
    manifest = read_json(directory / "manifest.json", Manifest)
    assert msgspec.to_builtins(manifest.condition) == {
        "name": "baseline",
        "identity": False,
        **switches,
        "option_order": "fixed",
        "fallback_strategy": FALLBACK_STRATEGY,
    }


# -- each switch reaches the prompt text, and nothing else changes -----------------------


async def test_identity_adds_exactly_the_identity_statement(make_config, tmp_path):
    base_strategy, base_decision = split((await prompts_of(make_config, tmp_path, "b", condition="baseline"))[0])
    ident_strategy, ident_decision = split((await prompts_of(make_config, tmp_path, "i", condition="identity"))[0])
    switched = split(
        (await prompts_of(make_config, tmp_path, "s", condition="baseline", switches={"identity": True}))[0]
    )
    assert len(base_strategy) == AGENTS * ROUNDS
    for key, baseline in base_strategy.items():
        paragraphs = baseline.split("\n\n")
        assert ident_strategy[key].split("\n\n") == [paragraphs[0], IDENTITY_STATEMENT, *paragraphs[1:]]
        # the neutral baseline carries no identity framing at all (the original study's pitfall)
        assert not has_identity_marker(baseline)
    assert ident_decision == base_decision  # decisions never see the statement
    assert switched == (ident_strategy, ident_decision)  # the switch on baseline = the preset


@pytest.mark.parametrize("dynamics", [True, False])
async def test_show_power_off_removes_every_power_figure_and_nothing_else(make_config, tmp_path, dynamics):
    power = {"dynamics": dynamics, "initial": "random"}
    shown = split((await prompts_of(make_config, tmp_path, "on", power=power))[0])
    hidden = split((await prompts_of(make_config, tmp_path, "off", power=power, switches={"show_power": False}))[0])
    removed_levels = removed_ratios = 0
    for key, prompt in shown[0].items():
        paragraphs = [p for p in prompt.split("\n\n") if not p.startswith("Your power level is") and p != POWER_FIXED]
        assert len(paragraphs) == len(prompt.split("\n\n")) - 1  # the power paragraph went
        expected, levels = POWER_LEVELS_RE.subn("", "\n\n".join(paragraphs))
        expected, ratios = POWER_RATIO_RE.subn("", expected)
        removed_levels += levels
        removed_ratios += ratios
        assert hidden[0][key] == expected
        assert "power" not in hidden[0][key].lower()
    assert removed_levels == AGENTS * (ROUNDS - 1) and removed_ratios > 0
    assert hidden[1] == shown[1]  # decision prompts unchanged


@pytest.mark.parametrize("history, window", [("none", 0), ("last:1", 1), ("last:2", 2)])
async def test_history_window_cuts_decision_history_and_nothing_else(make_config, tmp_path, history, window):
    full_prompts, full_games, _ = await prompts_of(make_config, tmp_path, "full")
    cut_prompts, cut_games, _ = await prompts_of(make_config, tmp_path, "cut", switches={"history": history})
    full_strategy, full_decision = split(full_prompts)
    cut_strategy, cut_decision = split(cut_prompts)
    assert moves(cut_games) == moves(full_games)
    assert cut_strategy == full_strategy
    assert cut_decision.keys() == full_decision.keys()
    for key, prompt in full_decision.items():
        round = int(key.split("/")[1][1:])
        lines = HISTORY_RE.search(prompt).group(1).splitlines()
        kept = [line for line in lines if line != "No previous games" and int(line.split()[1]) >= round - window]
        history = "\n".join(kept) or "No previous games"
        block = HISTORY_RE.search(prompt)
        expected = f"{prompt[: block.start(1)]}{history}{prompt[block.end(1) :]}"
        assert cut_decision[key] == expected


async def test_shuffled_labels_change_only_labels_with_a_fresh_permutation_per_round(make_config, tmp_path):
    stable_prompts, _, _ = await prompts_of(make_config, tmp_path, "stable")
    shuffled_prompts, _, _ = await prompts_of(make_config, tmp_path, "shuffled", switches={"labels": "shuffled"})
    mask = re.compile(r"Opponent [\w-]+")
    assert {k: mask.sub("Opponent ?", v) for k, v in stable_prompts.items()} == {
        k: mask.sub("Opponent ?", v) for k, v in shuffled_prompts.items()
    }
    assert split(stable_prompts)[0] == split(shuffled_prompts)[0]  # strategy prompts untouched

    def labels(prompts):
        """(round, viewer) -> {opponent: label}, from the current-opponent lines."""
        seen: dict[tuple[int, int], dict[int, str]] = {}
        for key, prompt in split(prompts)[1].items():
            round, viewer, opponent = viewer_and_opponent(key)
            seen.setdefault((round, viewer), {})[opponent] = re.search(
                r"Current opponent: Opponent ([\w-]+)", prompt
            ).group(1)
        return seen

    stable, shuffled = labels(stable_prompts), labels(shuffled_prompts)
    for mapping in stable.values():  # each a permutation of A, B, C
        assert sorted(mapping.values()) == ["A", "B", "C"]
    for (r, _), mapping in shuffled.items():  # ... qualified by the round when shuffled
        assert sorted(mapping.values()) == [f"R{r}-A", f"R{r}-B", f"R{r}-C"]
    for viewer in range(AGENTS):
        assert all(stable[(r, viewer)] == stable[(1, viewer)] for r in range(1, ROUNDS + 1))
    assert any(shuffled[(r, v)] != shuffled[(1, v)] for r in range(2, ROUNDS + 1) for v in range(AGENTS))
    # history lines name each past opponent by the label it had in that past round
    for key, prompt in split(shuffled_prompts)[1].items():
        _, viewer, _ = viewer_and_opponent(key)
        current = re.search(r"Current opponent: Opponent ([\w-]+)", prompt).group(1)
        for past, label in re.findall(r"Round (\d+) vs Opponent ([\w-]+):", prompt):
            assert label in shuffled[(int(past), viewer)].values()
            assert label != current  # no past game seems to be against the current opponent
    for key, prompt in split(stable_prompts)[1].items():
        _, viewer, _ = viewer_and_opponent(key)
        assert set(re.findall(r"vs Opponent (\w+):", prompt)) <= set(stable[(1, viewer)].values())


@pytest.mark.parametrize("rule", ["cooperate", "defect", "random"])
async def test_on_unparseable_decides_only_the_fallback_move(make_config, tmp_path, rule):
    def ambiguous(request):
        return "STRATEGY: think hard" if request.key.startswith("strategy/") else "Hmm, hard to say."

    default_prompts, _, _ = await prompts_of(make_config, tmp_path, "default", decide=ambiguous)
    prompts, games, _ = await prompts_of(
        make_config, tmp_path, rule, decide=ambiguous, switches={"on_unparseable": rule}
    )
    # Round 1 prompts are identical; later ones differ only through the moves drawn
    # (history actions, last round's figures), never in their wording.
    assert {k: v for k, v in prompts.items() if "/r1/" in k} == {
        k: v for k, v in default_prompts.items() if "/r1/" in k
    }
    actions = re.compile(r"You \w+, They \w+")
    assert {k: actions.sub("", v) for k, v in split(prompts)[1].items()} == {
        k: actions.sub("", v) for k, v in split(default_prompts)[1].items()
    }
    for g in games:
        k = int(g.game_id.split("_g")[1])
        for player, action, reason in (
            (1, g.player1_action, g.player1_fallback),
            (2, g.player2_action, g.player2_fallback),
        ):
            assert reason == "ambiguous reply after 3 tries"
            seed_draw = keyed_rng(7, "fallback", g.round, k, player).random() < 0.5
            expected = {"cooperate": "COOPERATE", "defect": "DEFECT"}.get(rule, "COOPERATE" if seed_draw else "DEFECT")
            assert action == expected
