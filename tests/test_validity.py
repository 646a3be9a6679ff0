"""Which moves count, the validity block and exit 4 (SPEC §3, §6): hand-computed examples,
runs through the runner with fake providers, and whole runs through the CLI against the
local stub server whose sub model always answers in one realistic style."""

import hashlib
import json
from pathlib import Path

import msgspec
import pytest

from acausal_tui.cli import main
from engine.analysis import compute_indicators, cooperation_breakdown, summarize_round
from engine.config import ValiditySettings
from engine.export import validity_cells
from engine.models import (
    AgentInfo,
    ExperimentResult,
    GameResult,
    Manifest,
    StrategyRecord,
    Validity,
)
from engine.parsing import extract_strategy
from engine.providers.base import ChatRequest, Completion, ProviderError
from engine.runner import run_experiment
from engine.store import list_experiments, read_json
from engine.validity import _over, compute_validity, guessed_note, validity_line
from tests.support import stub_server as stub
from tests.support.corpora import DECISION_CORPUS
from tests.support.fakes import FakeProvider, strategy_or
from tests.support.stub_run import calls_of, run_against

KEY = "sk-or-v1-validity-tests-0123456789abcdef"
C, D = "COOPERATE", "DEFECT"

# --- helpers ------------------------------------------------------------------------------


def agents(llm: int, scripted: int = 0) -> list[AgentInfo]:
    out = [AgentInfo(id=i, kind="llm", model="m", sub_model="s") for i in range(llm)]
    return out + [AgentInfo(id=llm + i, kind="scripted", strategy="always_defect") for i in range(scripted)]


def game(
    p1: int,
    p2: int,
    a1: str,
    a2: str,
    rule1: str = "word",
    rule2: str = "word",
    source1: str = "fresh",
    source2: str = "fresh",
    round: int = 1,
    pow1: float = 100.0,
    pow2: float = 100.0,
) -> GameResult:
    return GameResult(
        game_id=f"r{round}_g{p1}{p2}",
        round=round,
        player1_id=p1,
        player2_id=p2,
        player1_action=a1,
        player2_action=a2,  # type: ignore[arg-type]
        player1_payoff=0.0,
        player2_payoff=0.0,
        player1_power_before=pow1,
        player2_power_before=pow2,
        player1_fallback="ambiguous reply after 3 tries" if rule1 == "fallback" else None,
        player2_fallback="ambiguous reply after 3 tries" if rule2 == "fallback" else None,
        player1_parse_rule=rule1,
        player2_parse_rule=rule2,  # type: ignore[arg-type]
        player1_strategy_source=source1,
        player2_strategy_source=source2,  # type: ignore[arg-type]
    )


def strategy(agent: int, round: int, flags: list[str] | None = None, kind: str = "llm") -> StrategyRecord:
    return StrategyRecord(
        agent_id=agent,
        round=round,
        kind=kind,
        model="m",  # type: ignore[arg-type]
        strategy_text="x",
        full_reasoning="x",
        flags=flags or [],
    )


# --- what counts (hand-computed) -------------------------------------------------------------


def test_fallback_moves_count_in_no_rate_and_are_reported_beside():
    games = [
        game(0, 1, C, D),  # both counted
        game(0, 2, C, C, rule2="fallback"),  # agent 2's C drawn
        game(1, 2, D, D, rule1="follow_up", rule2="fallback"),
        game(0, 3, D, D, source1="carried_over", rule2="scripted", source2="scripted"),
    ]
    summary = summarize_round(1, games, 4, [100.0] * 4, {i: str(i) for i in range(4)}, None, 0.0)
    # counted: C D | C . | D . | D D  → 2 C of 6 counted moves; 2 fallbacks of 8 moves
    assert summary.cooperation_rate == pytest.approx(2 / 6)
    assert summary.fallback_decisions == 2 and summary.fallback_rate == 0.25
    # games with both moves counted: g1 (C D) and g4 (D D) → no mutual cooperation of 2
    assert summary.mutual_cooperation_rate == 0.0
    # fresh (or scripted) counted moves: C D | C | D | D (agent 0's carried-over D left out) → 2/5
    assert summary.cooperation_rate_fresh == pytest.approx(2 / 5)

    indicators = compute_indicators([], games, [summary])
    assert indicators.overall_cooperation_rate == pytest.approx(2 / 6)
    assert indicators.overall_cooperation_rate_fresh == pytest.approx(2 / 5)
    assert indicators.fallback_rate == 0.25

    breakdown = cooperation_breakdown(agents(3, 1), games)
    llm, scripted = breakdown.groups
    # LLM moves counted: 0:C,C,D  1:D,D  2:-,-  → 2 C of 5; agent 2's two moves are fallbacks
    assert (llm.moves, llm.fallback_moves, llm.cooperation_rate) == (5, 2, pytest.approx(2 / 5))
    assert (scripted.moves, scripted.fallback_moves, scripted.cooperation_rate) == (1, 0, 0.0)


def test_a_round_of_fallbacks_only_has_no_rate_never_zero():
    games = [game(0, 1, C, D, rule1="fallback", rule2="fallback")]
    summary = summarize_round(1, games, 2, [100.0, 100.0], {0: "a", 1: "b"}, None, 0.0)
    assert summary.cooperation_rate is None and summary.mutual_cooperation_rate is None
    assert summary.fallback_rate == 1.0
    indicators = compute_indicators([], games, [summary])
    assert indicators.overall_cooperation_rate is None
    assert indicators.cooperation_when_symmetric is None
    assert indicators.cooperation_trend is None
    assert cooperation_breakdown(agents(2), games).groups[0].cooperation_rate is None


def test_the_trend_skips_rounds_without_a_counted_move():
    rounds = [
        [game(0, 1, D, D, round=1)],
        [game(0, 1, C, C, rule1="fallback", rule2="fallback", round=2)],
        [game(0, 1, C, C, round=3)],
    ]
    summaries = [
        summarize_round(r, g, 2, [100.0] * 2, {0: "a", 1: "b"}, None, 0.0) for r, g in enumerate(rounds, start=1)
    ]
    # points (1, 0.0) and (3, 1.0): slope 0.5 per round
    assert compute_indicators([], [g for r in rounds for g in r], summaries).cooperation_trend == 0.5


# --- validity (hand-computed) -----------------------------------------------------------------


def six_games() -> list[GameResult]:
    """Agents 0-2 LLM, 3 scripted: 9 LLM moves, 3 scripted. One LLM fallback, two follow-ups."""
    return [
        game(0, 1, C, C, rule2="follow_up"),
        game(0, 2, C, D, rule1="line", rule2="fallback"),
        game(0, 3, C, D, rule1="json", rule2="scripted", source2="scripted"),
        game(1, 2, D, C, rule1="follow_up"),
        game(1, 3, C, D, rule2="scripted", source2="scripted"),
        game(2, 3, D, D, rule2="scripted", source2="scripted"),
    ]


def six_strategies(round2_flags: list[str]) -> list[StrategyRecord]:
    return (
        [strategy(a, 1) for a in range(3)]
        + [strategy(3, 1, kind="scripted")]
        + [strategy(0, 2, round2_flags), strategy(1, 2), strategy(2, 2), strategy(3, 2, kind="scripted")]
    )


def test_validity_counts_and_reasons():
    validity = compute_validity(agents(3, 1), six_games(), six_strategies(["carried_over"]), 2, ValiditySettings())
    assert validity == Validity(
        valid=False,
        # 1 of 9 LLM moves = 11.1%; 1 of 6 LLM strategies = 16.7%
        reasons=["fallback moves 11.1% > 5%", "non-fresh strategies 16.7% > 10%"],
        moves=12,
        model_moves=8,
        fallback_moves=1,
        fallback_share=pytest.approx(1 / 9),
        follow_up_share=pytest.approx(2 / 9),
        cut_off_replies=2,
        strategies_fresh=5,
        strategies_carried_over=1,
        strategies_fallback=0,
        non_fresh_share=pytest.approx(1 / 6),
        strategies_marker_missing=0,  # 5 fresh strategies, none with a guessed rule
        strategies_multiple_markers=0,
        strategies_truncated=0,
        strategies_flagged=0,
        flagged_share=0.0,
    )
    assert validity_line(validity) == "INVALID: fallback moves 11.1% > 5%; non-fresh strategies 16.7% > 10%"
    assert validity_line(validity, simulated=True).startswith("SIMULATED INVALID: ")


def test_validity_thresholds_come_from_the_config():
    loose = ValiditySettings(max_fallback_share=0.2, max_non_fresh_share=0.2)
    validity = compute_validity(agents(3, 1), six_games(), six_strategies(["fallback"]), 0, loose)
    assert validity.valid and validity.reasons == []
    assert validity.strategies_fallback == 1
    assert validity_line(validity) == "valid"
    assert validity_line(validity, simulated=True) == "SIMULATED valid"


@pytest.mark.parametrize(
    "fallbacks, moves, reasons",
    [
        (1, 20, []),  # exactly 5%: not above the threshold
        (12, 100, ["fallback moves 12% > 5%"]),
        (126, 2500, ["fallback moves 5.04% > 5%"]),  # just above: enough digits to see it
        (20, 20, ["fallback moves 100% > 5%"]),
    ],
)
def test_the_threshold_is_exclusive_and_the_reason_readable(fallbacks, moves, reasons):
    games = [
        game(
            0,
            1,
            C,
            C,
            rule1="fallback" if 2 * i < fallbacks else "word",
            rule2="fallback" if 2 * i + 1 < fallbacks else "word",
        )
        for i in range(moves // 2)
    ]
    assert compute_validity(agents(2), games, [], 0, ValiditySettings()).reasons == reasons


def test_strategies_whose_rule_was_guessed_are_counted_and_judged_only_when_asked():
    """SPEC §4's extraction flags reach the validity block: fresh LLM strategies found
    without a marker, among several, or cut at 200 words are counted (over_limit alone is
    not a guess; a failed call's flags are not a fresh strategy's)."""
    records = [
        strategy(0, 1, ["marker_missing"]),
        strategy(1, 1, ["over_limit", "multiple_markers"]),
        strategy(2, 1, ["over_limit", "truncated", "multiple_markers"]),
        strategy(0, 2, ["over_limit"]),
        strategy(1, 2),
        strategy(2, 2, ["carried_over", "marker_missing"]),
        strategy(3, 1, kind="scripted"),
    ]
    validity = compute_validity(
        agents(3, 1), six_games(), records, 0, ValiditySettings(max_fallback_share=1, max_non_fresh_share=1)
    )
    assert validity.valid  # reported, not judged, by default
    assert (validity.strategies_fresh, validity.strategies_flagged) == (5, 3)
    assert (
        validity.strategies_marker_missing,
        validity.strategies_multiple_markers,
        validity.strategies_truncated,
    ) == (1, 2, 1)
    assert validity.flagged_share == pytest.approx(3 / 5)
    assert guessed_note(validity) == (
        "rule guessed in 3 of 5 fresh strategies (1 without a STRATEGY: line, 2 with several, 1 cut short "
        "at 200 words or by max_tokens); the flags are in each strategy record"
    )
    strict = ValiditySettings(max_fallback_share=1, max_non_fresh_share=1, max_flagged_share=0.5)
    judged = compute_validity(agents(3, 1), six_games(), records, 0, strict)
    assert judged.reasons == ["strategies with a guessed rule 60% > 50%"]
    loose = ValiditySettings(max_fallback_share=1, max_non_fresh_share=1, max_flagged_share=0.6)  # equal: still valid
    assert compute_validity(agents(3, 1), six_games(), records, 0, loose).valid
    clean = compute_validity(agents(3, 1), six_games(), [strategy(0, 1, ["over_limit"])], 0, strict)
    assert (clean.strategies_flagged, clean.flagged_share, guessed_note(clean)) == (0, 0.0, None)


def test_a_rule_cut_off_by_max_tokens_counts_as_cut_short():
    """`truncated` is also a rule cut off mid-sentence by max_tokens, not only one past 200
    words: the note says both."""
    text, flags = extract_strategy("STRATEGY: Cooperate first; defect if the opponent", "length")
    assert flags == ["truncated"]
    record = msgspec.structs.replace(strategy(0, 1, flags), strategy_text=text or "")
    validity = compute_validity(agents(2), [], [record], 1, ValiditySettings())
    assert validity.strategies_truncated == 1
    assert "1 cut short at 200 words or by max_tokens" in (guessed_note(validity) or "")


def test_a_file_from_before_the_count_says_nothing_rather_than_zero():
    """Result files written before the guessed rules were counted decode with the counts
    unknown (None: empty CSV cells, no note), not 0."""
    old = b'{"valid": true, "reasons": [], "moves": 12, "strategies_fresh": 6}'
    validity = msgspec.json.decode(old, type=Validity)
    assert validity.strategies_flagged is None and validity.strategies_marker_missing is None
    assert guessed_note(validity) is None
    assert validity_cells(validity)["validity_strategies_flagged"] is None
    # a run that recorded no move was not judged: no `valid` cell, as the browser shows none
    assert validity_cells(Validity(valid=True, moves=0))["valid"] is None
    assert validity_cells(Validity(valid=False, reasons=["x"], moves=0))["valid"] is False


def test_scripted_only_runs_are_valid_with_no_shares():
    games = [game(0, 1, C, D, "scripted", "scripted", "scripted", "scripted")]
    validity = compute_validity(agents(0, 2), games, [strategy(0, 1, kind="scripted")], 0, ValiditySettings())
    assert validity.valid and validity.fallback_share is None and validity.non_fresh_share is None
    assert validity.model_moves == 0 and validity.moves == 2


def test_files_without_validity_say_so():
    assert validity_line(None) == "validity unknown (recorded before validity checks)"


# --- through the runner ------------------------------------------------------------------------


class CutOffProvider(FakeProvider):
    """A FakeProvider whose replies can carry finish_reason "length": `reply` returns
    (text, finish_reason)."""

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        answer = self.reply(request)
        if isinstance(answer, ProviderError):
            raise answer
        text, finish = answer  # type: ignore[misc]
        return Completion(text=text, prompt_tokens=10, completion_tokens=2, finish_reason=finish)


def files(config) -> Path:
    (loaded,) = list_experiments(Path(config.results_dir))
    return loaded.directory


def games_of(directory: Path, rounds: int) -> list[GameResult]:
    return [
        g for r in range(1, rounds + 1) for g in read_json(directory / "rounds" / f"games_r{r}.json", list[GameResult])
    ]


async def test_each_move_records_its_parse_rule_and_strategy_source(make_config):
    replies = {
        "p1/t0": ("Decision: DEFECT", "stop"),
        "p2/t0": ("I think I won't defect.", "stop"),
        "p2/t1": ("COOPERATE", "stop"),
    }

    def reply(request):
        if request.key.startswith("strategy/"):
            return ("Reasoning.\nSTRATEGY: cooperate", "stop")
        return replies.get(request.key.split("/", 3)[3], ("DEFECT", "stop"))

    config = make_config(
        agents=3,
        rounds=1,
        population=[{"kind": "llm", "count": 2}, {"kind": "scripted", "strategy": "always_defect", "count": 1}],
    )
    result = await run_experiment(config, provider=CutOffProvider(reply))
    g1, g2, g3 = games_of(files(config), 1)
    assert (g1.player1_action, g1.player1_parse_rule) == (D, "line")
    assert (g1.player2_action, g1.player2_parse_rule) == (C, "follow_up")
    assert (g2.player1_parse_rule, g2.player2_parse_rule) == ("line", "scripted")
    assert (g1.player1_strategy_source, g3.player2_strategy_source) == ("fresh", "scripted")
    assert result.validity is not None and result.validity.valid
    assert result.validity.follow_up_share == pytest.approx(1 / 4)


async def test_a_failed_strategy_call_plays_its_moves_under_a_flagged_source(make_config):
    def reply(request):
        if request.key in ("strategy/r1/a0", "strategy/r2/a0"):
            return ProviderError("bad request", status=400)
        return strategy_or("COOPERATE")(request)

    config = make_config(agents=3, rounds=2)
    result = await run_experiment(config, provider=FakeProvider(reply))
    games = games_of(files(config), 2)
    sources = {
        (g.round, s)
        for g in games
        for p, s in ((g.player1_id, g.player1_strategy_source), (g.player2_id, g.player2_strategy_source))
        if p == 0
    }
    assert sources == {(1, "fallback"), (2, "carried_over")}
    others = {
        s
        for g in games
        for p, s in ((g.player1_id, g.player1_strategy_source), (g.player2_id, g.player2_strategy_source))
        if p != 0
    }
    assert others == {"fresh"}
    # every move cooperates, but agent 0's are not under a fresh strategy: fresh rate 8 of 8
    assert result.acausal_indicators.overall_cooperation_rate_fresh == 1.0
    assert result.validity is not None and result.validity.strategies_fallback == 1
    assert result.validity.strategies_carried_over == 1
    assert result.validity.reasons == ["non-fresh strategies 33.3% > 10%"]


async def test_a_strategy_reply_cut_off_before_its_marker_is_a_failed_call(make_config):
    def reply(request):
        if request.key.startswith("strategy/r1/a1"):  # the first ask and the 3 asked again
            return ("I will think step by step about the payoffs and then", "length")
        if request.key.startswith("strategy/"):
            return ("Reasoning.\nSTRATEGY: cooperate", "stop")
        return ("COOPERATE", "stop")

    config = make_config(agents=2, rounds=1)
    result = await run_experiment(config, provider=CutOffProvider(reply))
    record = read_json(files(config) / "rounds" / "strategies_r1.json", list[StrategyRecord])[1]
    assert record.flags[0] == "fallback" and record.strategy_text == result.condition.fallback_strategy
    assert record.full_reasoning.startswith("I will think")  # the paid reply is kept
    (g,) = games_of(files(config), 1)
    assert g.player2_strategy_source == "fallback"
    assert result.validity is not None and result.validity.cut_off_replies == 4


async def test_a_cut_off_decision_reply_is_never_read_from_its_last_line(make_config):
    def reply(request):
        if request.key.startswith("strategy/"):
            return ("STRATEGY: cooperate", "stop")
        if request.key.endswith("/t0"):  # cut off mid-sentence: ambiguous, asked again
            return ("COOPERATE is tempting, but\nDEFECT", "length")
        return ("COOPERATE", "stop")

    config = make_config(agents=2, rounds=1)
    result = await run_experiment(config, provider=CutOffProvider(reply))
    (g,) = games_of(files(config), 1)
    assert (g.player1_action, g.player1_parse_rule) == (C, "follow_up")
    assert result.validity is not None and result.validity.cut_off_replies == 2


async def test_shuffled_option_order_swaps_prompt_and_follow_up_seeded(make_config, tmp_path):
    def reply(request):
        if request.key.startswith("strategy/"):
            return "STRATEGY: cooperate"
        return "COOPERATE" if request.key.endswith("/t1") else "hmm"

    prompts = []
    for name in ("a", "b"):
        config = make_config(
            agents=4, rounds=1, switches={"option_order": "shuffled"}, results_dir=str(tmp_path / name)
        )
        provider = FakeProvider(reply)
        result = await run_experiment(config, provider=provider)
        decisions = {r.key: r.messages for r in provider.requests if r.key.startswith("decision/")}
        prompts.append({k: m[0].content.rsplit("\n", 1)[1] for k, m in decisions.items() if k.endswith("/t0")})
        for key, messages in decisions.items():
            if key.endswith("/t1"):
                swapped = messages[0].content.endswith("Decision (DEFECT/COOPERATE):")
                expected = "DEFECT or COOPERATE" if swapped else "COOPERATE or DEFECT"
                assert messages[2].content == f"Reply with only one word: {expected}"
        manifest = read_json(files(config) / "manifest.json", Manifest)
        assert manifest.condition.option_order == "shuffled" and "decision" in manifest.prompt_hashes
        assert result.validity is not None and result.validity.follow_up_share == 1.0
    assert prompts[0] == prompts[1]  # seeded per decision
    assert set(prompts[0].values()) == {"Decision (COOPERATE/DEFECT):", "Decision (DEFECT/COOPERATE):"}


async def test_fixed_option_order_is_the_default(make_config):
    config = make_config(agents=3, rounds=1)
    provider = FakeProvider(strategy_or("COOPERATE"))
    await run_experiment(config, provider=provider)
    assert all(
        r.messages[0].content.endswith("Decision (COOPERATE/DEFECT):")
        for r in provider.requests
        if r.key.startswith("decision/")
    )


# --- whole runs through the CLI against the stub server ----------------------------------------


@pytest.fixture
def cli_env(monkeypatch, fast_backoff):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)


def headless(tmp_path: Path, server: stub.StubServer, agents: int = 3, rounds: int = 2) -> tuple[int, Path]:
    code, directory = run_against(tmp_path, server, agents=agents, rounds=rounds, seed=5)
    assert directory is not None
    return code, directory


def intended(prompt: str) -> str:
    """The move the stub's sub model means for a decision prompt (stable per prompt)."""
    return D if hashlib.blake2b(prompt.encode(), digest_size=2).digest()[0] % 4 == 0 else C


# "empty": an empty reply is a failed call (the provider raises), so a sub model that only
# answers empty fails every decision call and stops the run (tests/test_stub_experiments.py)
STYLES = sorted({entry["style"] for entry in DECISION_CORPUS} - {"empty"})


def corpus_entry(style: str, prompt: str) -> dict:
    """The reply of `style` the stub's sub model gives to a decision prompt (stable per prompt)."""
    entries = [entry for entry in DECISION_CORPUS if entry["style"] == style]
    return entries[int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=4).digest(), "big") % len(entries)]


def follow_up_answer(entry: dict, prompt: str) -> str:
    """A sub model that obeys the follow-up turn answers the move it meant."""
    return entry["expected"] if entry["expected"] != "ambiguous" else intended(prompt)


def style_rule(style: str):
    def rule(seen: stub.Seen) -> stub.Reply | None:
        messages = seen.body["messages"]
        prompt = messages[0]["content"]
        if stub.DECISION_MARKER not in prompt:
            return None  # strategies: the normal answer
        entry = corpus_entry(style, prompt)
        if len(messages) > 1:
            return stub.completion(follow_up_answer(entry, prompt))
        return stub.completion(entry["reply"], finish_reason=entry["finish_reason"] or "stop")

    return rule


@pytest.mark.parametrize("style", STYLES)
def test_a_sub_model_answering_in_one_style_is_read_right_or_flagged_never_flipped(tmp_path, server, cli_env, style):
    """Every move of a run whose sub model always answers in one corpus style is the move
    the reply meant, read by a strict rule; or read from a follow-up turn; never flipped."""
    server.rule = style_rule(style)
    code, directory = headless(tmp_path, server, agents=4, rounds=2)
    calls = {c.key: c for c in calls_of(directory)}
    seen_rules = set()
    for g in games_of(directory, 2):
        k = g.game_id.split("_g")[1]
        for player, action, rule in (
            (1, g.player1_action, g.player1_parse_rule),
            (2, g.player2_action, g.player2_parse_rule),
        ):
            call = calls[f"decision/r{g.round}/g{k}/p{player}/t0"]
            assert call.messages is not None
            prompt = call.messages[0].content
            entry = corpus_entry(style, prompt)
            seen_rules.add(rule)
            if rule in ("word", "line", "json"):
                assert action == entry["expected"], (entry, action)  # an ambiguous one is never read
            elif rule == "follow_up":
                assert action == follow_up_answer(entry, prompt), (entry, rule)
            else:  # flagged: only when the reply was empty, i.e. the call failed
                assert rule == "fallback" and not entry["reply"].strip(), (entry, rule)
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.validity is not None
    if result.validity.fallback_moves == 0:
        assert code == 0 and result.validity.valid
    else:
        assert code == 4 and not result.validity.valid
    labels = {entry["expected"] for entry in DECISION_CORPUS if entry["style"] == style}
    if labels == {"ambiguous"}:
        assert seen_rules == {"follow_up"}


def test_strategies_without_a_marker_are_counted_through_the_real_client(tmp_path, server, cli_env, capsys):
    """A main model that never writes a STRATEGY: line: its rules are the last 100 words,
    counted in the validity block, said headless, and INVALID (exit 4) once the config
    judges them."""
    server.rule = lambda seen: (
        None
        if stub.DECISION_MARKER in seen.body["messages"][0]["content"]
        else stub.completion("I will cooperate first, then copy what my opponent did last.")
    )
    code, directory = headless(tmp_path, server, agents=3, rounds=2)
    out = capsys.readouterr().err
    validity = read_json(directory / "experiment_results.json", ExperimentResult).validity
    assert validity is not None and validity.valid and code == 0
    assert (validity.strategies_fresh, validity.strategies_marker_missing, validity.flagged_share) == (6, 6, 1.0)
    assert "rule guessed in 6 of 6 fresh strategies (6 without a STRATEGY: line, 0 with several" in out
    (tmp_path / "strict").mkdir()
    code, directory = run_against(
        tmp_path / "strict", server, agents=3, rounds=2, seed=5, extra="[validity]\nmax_flagged_share = 0.5\n"
    )
    assert code == 4
    validity = read_json(directory / "experiment_results.json", ExperimentResult).validity
    assert validity is not None and validity.reasons == ["strategies with a guessed rule 100% > 50%"]


def test_a_simulated_runs_guessed_rules_line_says_simulated(tmp_path, capsys, monkeypatch):
    """SPEC §7: every headless line with a number from a simulated run is marked. (Seed 1
    at 6 x 4: one simulated strategy has no STRATEGY: line.)"""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    flags = ["--agents", "6", "--rounds", "4", "--seed", "1", "--results-dir", str(tmp_path)]
    assert main(["run", "--headless", *flags]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "rule guessed" in line]
    assert lines == [
        "SIMULATED rule guessed in 1 of 24 fresh strategies (1 without a STRATEGY: line, 0 with several, 0 cut "
        "short at 200 words or by max_tokens); the flags are in each strategy record"
    ]


def test_a_sub_model_that_never_answers_parseably_is_invalid_exit_4(tmp_path, server, cli_env, capsys):
    server.rule = lambda seen: (
        stub.completion("Coopérer.") if stub.DECISION_MARKER in seen.body["messages"][0]["content"] else None
    )
    code, directory = headless(tmp_path, server, agents=3, rounds=3)
    err = capsys.readouterr().err
    assert code == 4
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.status == "completed"
    validity = result.validity
    assert validity is not None and not validity.valid
    assert validity.reasons == ["fallback moves 100% > 5%"]
    assert (validity.model_moves, validity.fallback_moves, validity.fallback_share) == (0, 18, 1.0)
    # 0% of the moves counted as choices: no cooperation rate anywhere, only the fallbacks
    assert result.acausal_indicators.overall_cooperation_rate is None
    assert result.acausal_indicators.fallback_rate == 1.0
    assert all(s.cooperation_rate is None and s.fallback_decisions == 6 for s in result.round_summaries)
    assert result.cooperation_breakdown is not None
    assert result.cooperation_breakdown.groups[0].moves == 0
    games = games_of(directory, 3)
    assert {g.player1_parse_rule for g in games} == {g.player2_parse_rule for g in games} == {"fallback"}
    # headless: the rates say n/a, the fallback rate is printed, the validity line last
    assert "cooperation n/a  fallbacks 6" in err
    assert (
        "cooperation n/a of the moves decided (by a model or a scripted rule; fallbacks left out); fallback_rate 100.0%"
        in err
    )
    assert err.rstrip().splitlines()[-1] == "INVALID: fallback moves 100% > 5%"
    # every decision asked 3 times: the original prompt and 2 follow-up turns
    assert len([s for s in server.requests if stub.DECISION_MARKER in json.dumps(s.body)]) == 18 * 3


def test_a_valid_run_prints_valid_and_exits_0(tmp_path, server, cli_env, capsys):
    code, directory = headless(tmp_path, server)
    assert code == 0
    assert capsys.readouterr().err.rstrip().splitlines()[-1] == "valid"


# --- resume ---------------------------------------------------------------------------------


class KeyedCutOffs(CutOffProvider):
    """Replies fixed by the call key; a quarter of first decision replies are cut off.
    Aborts the run when request number `abort_at` arrives (0: never)."""

    def __init__(self, control=None, abort_at: int = 0) -> None:
        super().__init__(self.answer)
        self.control, self.abort_at = control, abort_at

    def answer(self, request: ChatRequest) -> tuple[str, str]:
        if self.abort_at and len(self.requests) == self.abort_at:
            self.control.abort("test abort")
        if request.key.startswith("strategy/"):
            return "STRATEGY: cooperate", "stop"
        if request.key.endswith("/t0") and hashlib.blake2b(request.key.encode()).digest()[0] % 4 == 0:
            return "COOPERATE is tempting, but", "length"
        return "COOPERATE", "stop"


async def test_a_resumed_run_counts_cut_off_replies_as_an_uninterrupted_one(make_config, tmp_path):
    from engine.control import RunControl
    from engine.resume import open_resume, resume_experiment

    reference = await run_experiment(
        make_config(agents=4, rounds=3, results_dir=str(tmp_path / "a")), provider=KeyedCutOffs()
    )
    control = RunControl()
    config = make_config(agents=4, rounds=3, results_dir=str(tmp_path / "b"))
    first = await run_experiment(config, provider=KeyedCutOffs(control, abort_at=30), control=control)
    assert first.status == "aborted" and first.total_rounds == 1
    resumed = await resume_experiment(open_resume(files(config)), KeyedCutOffs())
    assert resumed.status == "completed"
    assert reference.validity is not None and reference.validity.cut_off_replies > 0
    assert resumed.validity == reference.validity


def test_a_share_just_over_its_threshold_shows_enough_digits_to_be_over():
    """1001 of 20,000 moves used to read "fallback moves 5.00% > 5%"."""
    assert _over("fallback moves", 1001 / 20000, 0.05) == "fallback moves 5.005% > 5%"
    assert _over("fallback moves", 0.0501, 0.05) == "fallback moves 5.01% > 5%"
    assert _over("fallback moves", 0.12, 0.05) == "fallback moves 12% > 5%"
    assert _over("fallback moves", 0.05, 0.05) is None


def test_a_configured_threshold_is_shown_as_configured():
    """A threshold of 16.66% once read "16.7% > 16.7%": it was rounded like the share."""
    assert _over("non-fresh strategies", 1 / 6, 0.1666) == "non-fresh strategies 16.7% > 16.66%"
    assert _over("fallback moves", 0.05333, 0.0533) == "fallback moves 5.333% > 5.33%"
