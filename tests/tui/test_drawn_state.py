"""What the run screen and the browser draw, read from the rendered rows (not the view
model): the live feed, the strategy pane's round, typed-ahead keys, and the browser's
keys and states."""

import os
from pathlib import Path

from textual import events
from textual.widget import Widget
from textual.widgets import OptionList

from acausal_tui.app import AcausalApp, experiment_runner
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.experiment import ExperimentScreen
from acausal_tui.screens.run import RunScreen
from acausal_tui.screens.run_text import feed_line
from acausal_tui.widgets.strategy import StrategyPane
from acausal_tui.widgets.tail import Tail
from engine.events import Event, GameFinished, RoundSummarised
from engine.lock import LOCK_NAME
from tests.support.fakes import FakeProvider, strategy_or
from tests.tui.conftest import FIXTURE_RESULTS, HeldProvider, wait_until

SIZE = (120, 40)


def drawn_rows(widget: Widget) -> list[str]:
    """The widget's content rows as drawn (its render_line strips), trailing blanks cut."""
    return [
        "".join(segment.text for segment in widget.render_line(y)).rstrip() for y in range(widget.content_size.height)
    ]


def recording_app(config, provider) -> tuple[AcausalApp, list[Event]]:
    """An app running `config` on `provider`, with every event the screen was sent recorded."""
    events_seen: list[Event] = []
    inner = experiment_runner(config, provider)

    class Tee:
        def __init__(self, observer) -> None:
            self.observer = observer

        def on_event(self, event: Event) -> None:
            events_seen.append(event)
            self.observer.on_event(event)

    async def run(observer, control):
        return await inner(Tee(observer), control)

    return AcausalApp(run=run, results_dir=Path(config.results_dir)), events_seen


async def test_the_feed_draws_exactly_the_newest_games_in_order(make_config):
    """20 agents (190 games a round): by round 4 far more lines went through the 100-line
    buffer than it holds, so line objects were dropped and their ids reused."""
    config = make_config(agents=20, rounds=6, seed=5)
    held = HeldProvider(seed=5, hold_from=4)
    app, seen = recording_app(config, held)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RunScreen)
        for rounds_done in (1, 2, 3):  # drawn after every round, so the cache is exercised
            await wait_until(pilot, lambda n=rounds_done: screen.view.completed >= n)
            await pilot.pause(0.2)
        await wait_until(pilot, lambda: held.held > 0 and not screen.buffer.events)
        await pilot.pause(0.2)
        tail = screen.query_one(Tail)
        rows = drawn_rows(tail)
        width = tail.content_size.width
        expected = [feed_line(e).plain[:width].rstrip() for e in seen if isinstance(e, GameFinished | RoundSummarised)]
        held.release()
        await app.workers.wait_for_complete()
    assert len(expected) == 3 * 190 + 3 and len(rows) >= 10
    assert rows == expected[-len(rows) :]
    assert rows[-1] == "── round 3: cooperation " + rows[-1].split("cooperation ")[1]
    assert rows[-2].startswith("r3_g")


async def test_a_drawn_move_is_drawn_in_lower_case_and_the_stats_say_so(make_config):
    """A move drawn because no reply could be read (a fallback, not counted) used to show as
    C or D with a "fallback" tag that narrow panes cut off and that never said which player's
    move it was: it is drawn as c or d. The run's state line gives the share drawn so far."""
    replies = {"decision/r1/g1/p2/t0", "decision/r1/g1/p2/t1", "decision/r1/g1/p2/t2"}

    def reply(request) -> str:  # game 1's second player never answers clearly
        return "Hmm, hard to say." if request.key in replies else strategy_or("COOPERATE")(request)

    config = make_config(agents=3, rounds=2, seed=5)
    held = HeldProvider(seed=5, hold_from=2, kind="strategy", inner=FakeProvider(reply))
    app, _ = recording_app(config, held)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: held.held == 3 and screen.view.completed == 1)
        await pilot.pause(0.2)
        rows = drawn_rows(screen.query_one(Tail))
        running = drawn_rows(screen.query_one("#run-status"))[0]
        held.release()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        finished = drawn_rows(screen.query_one("#run-status"))[0]
    game = next(row for row in rows if row.startswith("r1_g1 "))
    assert game.split()[2] in ("C·c", "C·d"), game
    assert [row.split()[2] for row in rows if row.startswith(("r1_g2", "r1_g3"))] == ["C·C", "C·C"]
    assert "── round 1: cooperation 100.0% · 16.7% drawn" in rows, [r for r in rows if r]
    assert "fallback moves 16.7% so far (drawn, not counted)" in running, running
    assert "Finished: completed" in finished and "INVALID: fallback moves 8.3% > 5%" in finished, finished


async def test_the_feed_never_draws_a_dropped_line_in_place_of_a_new_one():
    """Lines written one at a time into a full feed, each drawn as it arrives: a line that
    left the buffer is freed, and Python may give its id() to the next line."""
    from rich.text import Text
    from textual.app import App

    class FeedApp(App[None]):
        def compose(self):
            yield Tail(5, id="feed")

    app = FeedApp()
    async with app.run_test(size=(40, 5)):
        tail = app.query_one(Tail)
        for n in range(300):
            tail.write([Text(f"line {n}")])
            rows = drawn_rows(tail)
            assert rows[-1] == f"line {n}", rows
            assert rows == [""] * max(0, 4 - n) + [f"line {k}" for k in range(max(0, n - 4), n + 1)]


async def test_a_feed_write_inside_the_interval_is_painted_at_the_next_due_tick(monkeypatch):
    """The feed paints at most once per `min_interval`: a write inside it is held back and
    painted by the first `paint_if_due()` after it (the run screen's flush), never lost."""
    from textual.app import App

    from acausal_tui.widgets import tail as tail_module

    now = [100.0]
    monkeypatch.setattr(tail_module, "monotonic", lambda: now[0])

    class FeedApp(App[None]):
        def compose(self):
            yield Tail(5, min_interval=0.25, id="feed")

    app = FeedApp()
    async with app.run_test(size=(40, 5)):
        tail = app.query_one(Tail)
        paints: list[float] = []
        monkeypatch.setattr(tail, "refresh", lambda *a, **k: paints.append(now[0]))
        tail.write(["a"])
        tail.write(["b"])  # 0 s later: held back
        assert paints == [100.0] and tail.paint_pending
        now[0] += 0.2
        tail.paint_if_due()
        assert paints == [100.0] and tail.paint_pending  # still inside the interval
        now[0] += 0.1
        tail.paint_if_due()
        assert paints == [100.0, 100.3] and not tail.paint_pending
        tail.paint_if_due()  # nothing new: no paint
        assert paints == [100.0, 100.3]
        assert drawn_rows(tail)[-2:] == ["a", "b"]


async def test_the_strategy_pane_shows_the_current_round_and_never_a_discarded_one(make_config):
    config = make_config(agents=4, rounds=6, seed=2)
    held = HeldProvider(seed=2, hold_from=3)
    app, _ = recording_app(config, held)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        pane = screen.query_one(StrategyPane)
        await wait_until(pilot, lambda: screen.view.completed == 2 and held.held == 4)
        await pilot.pause(StrategyPane.MIN_INTERVAL_S + 0.2)  # the text's redraw is throttled
        text = "\n".join(drawn_rows(pane.query_one("#strategy-text")))
        assert "Agent 0 · round 3: no strategy yet" in text  # round 3's are held in flight
        await pilot.press("a", "y")  # abort: round 3 is discarded, 2 rounds are kept
        held.release()
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        text = "\n".join(drawn_rows(pane.query_one("#strategy-text")))
        assert screen.view.result.total_rounds == 2
        assert text.startswith("Agent 0 · round 2 ·")


async def test_no_strategy_yet_is_replaced_as_soon_as_the_strategy_arrives():
    """The pane's redraws are throttled, but never leave a false "no strategy yet" drawn."""
    from textual.app import App

    from engine.models import StrategyRecord

    class PaneApp(App[None]):
        def compose(self):
            yield StrategyPane()

    app = PaneApp()
    async with app.run_test(size=(80, 10)) as pilot:
        pane = app.query_one(StrategyPane)
        pane.set_agents(["Agent 0", "Agent 1"])
        pane.start_round(1)
        pane.show(force=False)
        await pilot.pause()
        assert drawn_rows(pane.query_one("#strategy-text"))[0] == "Agent 0 · round 1: no strategy yet"
        record = StrategyRecord(
            agent_id=0, round=1, kind="llm", model="m", strategy_text="cooperate first", full_reasoning=""
        )
        pane.add(record)
        pane.show(force=False)  # well within the throttle's second
        await pilot.pause()
        text = "\n".join(drawn_rows(pane.query_one("#strategy-text")))
        assert "STRATEGY: cooperate first" in text and "no strategy yet" not in text


def all_keys_handled(app) -> bool:
    """No message waits in the app's queue or in any screen's: the burst is fully handled."""
    return app._message_queue.empty() and all(s._message_queue.empty() for s in app.screen_stack)


async def test_a_burst_of_typed_ahead_keys_leaves_the_run_screen_in_the_right_state(make_config):
    """60 keys sent at once, as a terminal delivers a burst: each is handled by the screen
    that is on top when its turn comes."""
    config = make_config(agents=7, rounds=4, seed=9)
    held = HeldProvider(seed=9, hold_from=2)
    app = AcausalApp(run=experiment_runner(config, held), results_dir=Path(config.results_dir))
    keys = (
        [("right_square_bracket", "]")] * 30
        + [("left_square_bracket", "[")] * 18
        + [("b", "b"), ("escape", None)] * 3
        + [("question_mark", "?"), ("escape", None)]
        + [("p", "p")] * 4
    )
    assert len(keys) == 60
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        pane = screen.query_one(StrategyPane)
        # the burst comes once the run is on screen: calls in flight, the agents listed
        await wait_until(pilot, lambda: held.held > 0 and pane.query_one(OptionList).option_count == 7)
        for key, char in keys:  # all queued before the first is handled
            app._driver.send_message(events.Key(key, char))
        await wait_until(pilot, lambda: all_keys_handled(app), settle=3)
        assert app.screen_stack == [app.screen_stack[0], screen] or app.screen_stack == [screen]
        assert screen.query_one(StrategyPane).selected == (30 - 18) % 7
        assert not screen.control.paused and not screen.control.aborted  # p four times
        held.release()
        await app.workers.wait_for_complete()


async def test_end_and_home_move_the_browser_cursor_and_back_is_hidden_at_the_top():
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#experiments")
        assert table.row_count > 2 and table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("home")
        assert table.cursor_row == 0
        assert "esc" not in "\n".join(drawn_rows(app.screen.query_one("Footer")))
        assert app.screen.check_action("back", ()) is False


async def test_an_experiment_screen_is_not_always_loading():
    """The screen's own "loading" is Textual's flag (scrolling blocked when true)."""
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+end", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ExperimentScreen)
        assert app.screen.loading is False


async def test_the_browser_shows_a_run_being_resumed_as_running(tmp_path, make_config):
    """Lock held by a live pid and manifest `running` win over the partial result file of
    the interruption the run is being resumed from."""
    import json
    import shutil

    from engine.lock import holder

    source = next(
        p
        for p in sorted(FIXTURE_RESULTS.iterdir())
        if (p / "experiment_results.json").exists() and p.name.startswith("exp_")
    )
    directory = tmp_path / source.name
    shutil.copytree(source, directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["status"] = "running"
    (directory / "manifest.json").write_text(json.dumps(manifest))
    import fcntl

    (directory / LOCK_NAME).write_text(str(os.getpid()))
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)  # the writer's lock: the directory
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert holder(directory) == os.getpid()
        app = AcausalApp(results_dir=tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, BrowserScreen)
            rows = "\n".join(drawn_rows(app.screen.query_one("#experiments")))
    finally:
        os.close(fd)
    assert f"running (pid {os.getpid()})" in rows and "aborted" not in rows


class Priced(HeldProvider):
    """The simulated provider at $0.01 a call (worst case the same): a budget that runs out."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed, hold_from=99)

    async def complete(self, request):
        import msgspec

        return msgspec.structs.replace(await super().complete(request), cost=0.01)

    def worst_case_cost(self, request) -> float:
        return 0.01


async def test_a_budget_stop_explains_the_reservation_rule_on_screen(make_config):
    config = make_config(agents=4, rounds=3, provider={"name": "simulated", "max_cost_usd": 0.25})
    app = AcausalApp(run=experiment_runner(config, Priced(config.seed)), results_dir=Path(config.results_dir))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        screen = app.screen
        result = "\n".join(drawn_rows(screen.query_one("#final-text")))
        status = "\n".join(drawn_rows(screen.query_one("#run-status")))
    assert app.status == "budget_exceeded"
    assert "Finished: budget_exceeded" in status
    assert "spent + the worst case of the calls in flight + its own" in " ".join(result.split())


async def test_only_the_first_app_of_a_process_freezes_the_heap():
    """gc.freeze() in every app mount kept every earlier app's garbage forever (a test
    process grew from 42 to 85 MiB over 30 apps; now 51 MiB)."""
    import gc

    counts = []
    for _ in range(2):
        app = AcausalApp(results_dir=FIXTURE_RESULTS)
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            counts.append(gc.get_freeze_count())
    assert counts[0] > 0 and counts[1] <= counts[0]  # the second app froze nothing more
