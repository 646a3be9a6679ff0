"""The run screen on the real app: the simulated provider, the engine as the app's worker."""

from pathlib import Path

import pytest
from textual.widgets import RichLog, Static

from acausal_tui.app import AcausalApp
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.dialogs import ConfirmScreen, HelpScreen
from acausal_tui.screens.experiment import ExperimentScreen
from acausal_tui.screens.new_run import NewRunScreen
from acausal_tui.screens.run import RunScreen
from acausal_tui.screens.run_view import RunView
from acausal_tui.screens.sweep import SweepScreen
from acausal_tui.screens.transcript import ReportScreen, TranscriptScreen
from acausal_tui.widgets.tail import Tail
from engine.events import RoundSummarised
from engine.models import CallRecord, ExperimentResult, Manifest
from engine.providers.simulated import SimulatedProvider
from engine.resume import open_resume, resume_runner
from engine.store import read_json, read_jsonl
from tests.support.experiment_files import assert_files_valid
from tests.support.fakes import FakeProvider, strategy_or
from tests.tui.conftest import (
    SIZE,
    FlakyProvider,
    HeldProvider,
    abort_after_changing_mind,
    make_summary,
    screen_text,
    static_text,
    wait_until,
)


def run_screen(app: AcausalApp) -> RunScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, RunScreen)
    return screen


async def test_a_run_starts_at_once_and_ends_with_its_summary(run_app):
    app = run_app(agents=4, rounds=3)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = run_screen(app)
        assert app.status == "completed"
        assert "SIMULATED" in static_text(app, "#run-header")
        assert "Finished: completed" in static_text(app, "#run-status")
        final = static_text(app, "#final-text")
        assert str(app.directory) in final and "overall_cooperation_rate" in final
        assert screen.query_one("#final").display and not screen.query_one("#feed").display
        assert "Round 3/3" in static_text(app, "#round-label")
        stats = static_text(app, "#stats")
        assert f"Calls  {screen.control.stats.calls} · 0 retries" in stats
        assert "of budget $10.00" in stats
        assert len(screen.view.rates) == 3
        overall = screen.view.overall_cooperation()
        # The app stays open: nothing to confirm, so q quits at once.
        await pilot.press("q")
    assert app.return_code == 0
    result = read_json(Path(app.directory) / "experiment_results.json", ExperimentResult)
    assert result.status == "completed"
    assert overall == pytest.approx(result.acausal_indicators.overall_cooperation_rate)


async def test_the_feed_shows_round_labels_never_real_ids(run_app):
    app = run_app(agents=4, rounds=2, provider={"name": "simulated", "latency_ms": 2})
    async with app.run_test(size=SIZE) as pilot:
        view = run_screen(app).view
        await wait_until(pilot, lambda: view.phase == "games" and view.phase_done > 3)
        feed = run_screen(app).query_one("#feed", Tail)
        text = "\n".join(line.plain for line in feed.lines)
        assert "Player_1_" in text and "Agent" not in text
        await app.workers.wait_for_complete()


async def test_pause_stops_new_calls_and_resume_finishes_the_run(run_app):
    held = HeldProvider(seed=7, hold_from=2)
    app = run_app(held, agents=6, rounds=3)
    async with app.run_test(size=SIZE) as pilot:
        screen = run_screen(app)
        stats = screen.control.stats
        await wait_until(pilot, lambda: held.held == 6)  # round 2's strategy calls are in flight
        assert screen.check_action("pause", ()) and not screen.check_action("resume", ())
        await pilot.press("p")
        assert screen.control.paused
        # The footer now offers Resume instead of Pause.
        assert not screen.check_action("pause", ()) and screen.check_action("resume", ())
        # the status line reads the live counters at each 10 Hz flush
        await wait_until(
            pilot, lambda: "Paused — no new calls are sent; 6 calls still in flight" in static_text(app, "#run-status")
        )
        held.release()  # the in-flight calls finish; no new one may start
        await wait_until(pilot, lambda: stats.in_flight == 0)
        calls = stats.calls
        for _ in range(5):
            await pilot.pause(0.05)
            assert stats.calls == calls and stats.in_flight == 0
        await wait_until(pilot, lambda: "0 calls still in flight" in static_text(app, "#run-status"))
        assert app.status is None and screen.running
        await pilot.press("p")
        assert not screen.control.paused
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.status == "completed"
        assert stats.calls > calls


async def test_abort_asks_first_then_saves_partial_results(run_app):
    held = HeldProvider(seed=7, hold_from=3)
    app = run_app(held, agents=5, rounds=6)
    async with app.run_test(size=SIZE) as pilot:
        screen = run_screen(app)
        await wait_until(pilot, lambda: held.held == 5)
        await abort_after_changing_mind(pilot, app, screen)
        assert app.status == "aborted"
        assert "Finished: aborted" in static_text(app, "#run-status")
        assert not screen.check_action("abort", ()) and not screen.check_action("pause", ())
        # the progress line says what was saved, not the round cut short, and no ETA
        assert static_text(app, "#round-label") == "Round 2/6"
        assert static_text(app, "#phase-label") == " 33% · 2 rounds saved"
    directory = Path(app.directory)
    assert_files_valid(directory)
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    manifest = read_json(directory / "manifest.json", Manifest)
    assert result.status == manifest.status == "aborted"
    assert result.total_rounds == 2
    assert sorted(p.name for p in (directory / "rounds").iterdir()) == sorted(
        f"{kind}_r{r}.json" for kind in ("games", "strategies", "summary") for r in (1, 2)
    )
    calls, torn = read_jsonl(directory / "calls.jsonl", CallRecord)
    assert calls and not torn


@pytest.mark.parametrize("key", ["a", "q"])
async def test_an_open_abort_or_quit_question_is_withdrawn_when_the_run_ends(run_app, key):
    # every reply readable, so no follow-up call is needed after the held ones
    held = HeldProvider(seed=7, hold_from=2, kind="decision", inner=FakeProvider(strategy_or("COOPERATE")))
    app = run_app(held, agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        screen = run_screen(app)
        await wait_until(pilot, lambda: held.held == 6)  # the run's last calls are in flight
        await pilot.press(key)  # the question holds new calls; the run needs none to end
        assert isinstance(app.screen, ConfirmScreen)
        held.release()  # the run ends with the question still open
        await wait_until(pilot, lambda: app.status is not None)
        await pilot.pause()
        assert app.status == "completed" and app.screen is screen and app.is_running
        text = screen_text(app)
        assert "Finished: completed" in text and "Abort" not in text and "Quit?" not in text


@pytest.mark.parametrize("key", ["a", "q"])
async def test_no_call_starts_while_the_abort_or_quit_question_is_open(run_app, key):
    """Calls (and cost) used to go on adding up while the researcher read "Abort the run?";
    the question holds new calls as `p` does, and "no" lets the run go on."""
    held = HeldProvider(seed=7, hold_from=2)
    app = run_app(held, agents=4, rounds=3)
    async with app.run_test(size=SIZE) as pilot:
        screen = run_screen(app)
        stats = screen.control.stats
        await wait_until(pilot, lambda: held.held == 4)
        await pilot.press(key)
        assert isinstance(app.screen, ConfirmScreen) and screen.control.paused
        held.release()  # the calls in flight finish; none may start while the question is open
        await wait_until(pilot, lambda: stats.in_flight == 0)
        calls = stats.calls
        for _ in range(5):
            await pilot.pause(0.05)
            assert stats.calls == calls
        await pilot.press("n")
        assert app.screen is screen and not screen.control.paused
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.status == "completed" and stats.calls > calls


async def test_a_paused_run_stays_paused_after_no_to_the_abort_question(run_app):
    held = HeldProvider(seed=7, hold_from=2)
    app = run_app(held, agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        screen = run_screen(app)
        await wait_until(pilot, lambda: held.held == 3)
        await pilot.press("p")
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert screen.control.paused and screen.check_action("resume", ())
        held.release()
        await pilot.press("p")  # p resumes a paused run
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.status == "completed"


async def test_quit_while_running_asks_and_aborts_cleanly(run_app):
    held = HeldProvider(seed=7, hold_from=2)
    app = run_app(held, agents=4, rounds=3)
    async with app.run_test(size=SIZE) as pilot:
        screen = run_screen(app)
        await wait_until(pilot, lambda: held.held == 4)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.is_running and screen.running
        await pilot.press("ctrl+q")  # the same question
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+q")  # pressed again: still the one question, not a second over it
        assert len([s for s in app.screen_stack if isinstance(s, ConfirmScreen)]) == 1
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen) and not screen.control.paused  # the run goes on
        await pilot.press("ctrl+q")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running)
    assert app.status == "aborted"
    assert_files_valid(Path(app.directory))
    assert read_json(Path(app.directory) / "manifest.json", Manifest).status == "aborted"


async def test_the_error_log_shows_retries_and_errors_with_their_reasons(run_app):
    flaky = FlakyProvider(7, transient={"strategy/r1/a0", "decision/r1/g2/p1/t0"}, broken={"strategy/r2/a1"})
    app = run_app(flaky, agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        log = "".join(line.text for line in run_screen(app).query_one("#errors", RichLog).lines)
        stats = static_text(app, "#stats")
    assert "retry  strategy/r1/a0 attempt 1 failed: HTTP 503: upstream overloaded; next try in 0.0s" in log
    assert "retry  decision/r1/g2/p1/t0 attempt 1 failed" in log
    assert "strategy_failed agent 1: HTTP 400: [bold]bad request[/]" in log  # literal, not bold
    assert "2 retries" in stats
    assert app.status == "completed"


async def test_a_resumed_run_shows_the_rounds_done_before_it(run_app):
    held = HeldProvider(seed=7, hold_from=3)
    first = run_app(held, agents=4, rounds=4)
    async with first.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: held.held == 4)
        run_screen(first).control.abort()
        await first.workers.wait_for_complete()
    resumable = open_resume(Path(first.directory))
    try:
        app = AcausalApp(run=resume_runner(resumable, SimulatedProvider(seed=7)), results_dir=Path("."))
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            view = run_screen(app).view
            assert len(view.rates) == 4  # rounds 1-2 from their files, 3-4 played now
            result = view.result
            assert result is not None and result.status == "completed"
            assert view.overall_cooperation() == pytest.approx(result.acausal_indicators.overall_cooperation_rate)
    finally:
        resumable.store.close()


async def test_help_lists_every_binding_of_every_screen_under_its_screen(run_app):
    screens = {
        "Run screen": RunScreen,
        "Sweep screen": SweepScreen,
        "Browser": BrowserScreen,
        "Experiment": ExperimentScreen,
        "New experiment": NewRunScreen,
        "Transcript": TranscriptScreen,
        "Report": ReportScreen,
        "Everywhere": AcausalApp,
    }
    app = run_app(agents=3, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        sections: dict[str, list[str]] = {}
        for line in str(app.screen.query_one("#help-text", Static).content).splitlines():
            if line and not line.startswith(" "):
                sections[line] = []
            else:
                sections[list(sections)[-1]].append(line)
        for title, screen in screens.items():
            (heading,) = [h for h in sections if h.startswith(title)]
            rows = [(line[:8], line[10:]) for line in sections[heading]]  # key right-aligned in 8 cells
            for binding in screen.BINDINGS:
                key = app.get_key_display(binding)
                text = binding.tooltip or binding.description
                assert any(key in shown and what == text for shown, what in rows), (title, key, text)
        browser = "\n".join(sections[next(h for h in sections if h.startswith("Browser"))])
        assert "the rounds tab" not in browser  # 1…5 belong to the experiment screen
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await app.workers.wait_for_complete()


async def test_help_lists_the_keys(run_app):
    app = run_app(agents=3, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "pause / resume the run" in text and "abort the run, asking first" in text
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await app.workers.wait_for_complete()


async def test_strategy_pane_switches_agent_by_key(run_app):
    app = run_app(agents=4, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert static_text(app, "#strategy-text").startswith("Agent 0 · round 1")
        await pilot.press("right_square_bracket")
        assert static_text(app, "#strategy-text").startswith("Agent 1 · round 1")
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert static_text(app, "#strategy-text").startswith("Agent 3 · round 1")


async def test_an_engine_crash_is_shown_not_raised(tmp_path):
    async def broken(observer, control):
        raise RuntimeError("disk on fire")

    app = AcausalApp(run=broken, results_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.status is not None)
        await pilot.pause()
        assert app.is_running
        assert "Failed: RuntimeError: disk on fire" in static_text(app, "#run-status")
        errors = run_screen(app).query_one("#errors", RichLog)
        assert "disk on fire" in "\n".join(line.text for line in errors.lines)
        assert app.status == "failed"


def test_eta_is_the_mean_of_the_last_three_rounds_times_rounds_left():
    view = RunView(total_rounds=10)
    assert view.eta() is None
    for round, seconds in enumerate([9.0, 1.0, 2.0, 3.0], start=1):
        view.apply(RoundSummarised(make_summary(round, duration_s=seconds), 0.5, 10))
    assert view.eta() == pytest.approx((1.0 + 2.0 + 3.0) / 3 * 6)


async def test_manifest_warnings_are_shown_in_the_error_log(run_app):
    app = run_app(
        rounds=1, population=[{"kind": "llm", "count": 2}, {"kind": "scripted", "strategy": "grudger", "count": 1}]
    )
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        log = "".join(line.text for line in run_screen(app).query_one("#errors", RichLog).lines)
    assert "warning the identity statement tells every LLM agent" in log


async def test_the_games_title_says_which_ids_the_feed_shows(run_app):
    held = HeldProvider(seed=7, hold_from=2)
    app = run_app(held, agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: held.held == 3)  # round 1's games in the feed
        await pilot.pause()
        assert "Games (anonymised;" in screen_text(app)
        await pilot.press("i")
        await pilot.pause()
        text = screen_text(app)
        assert "Games (real ids" in text and "Games (anonymised;" not in text
        await pilot.press("i")
        await pilot.pause()
        assert "Games (anonymised;" in screen_text(app)
        held.release()
        await app.workers.wait_for_complete()
