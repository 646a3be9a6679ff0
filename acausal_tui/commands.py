"""The command palette's project commands (ctrl+p): new experiment or sweep, browse, and
what applies to the experiment selected in the browser or the run on screen."""

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.export import ExportError, export_csv


def desk_commands(app: Any, screen: Any) -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """(name, help, callback) of every command that applies to `screen` (the one the
    palette was opened on)."""
    from acausal_tui.screens.browser import BrowserScreen
    from acausal_tui.screens.new_run import NewRunScreen
    from acausal_tui.screens.run import RunScreen

    yield (
        "New experiment",
        "open the form for a new experiment",
        lambda: app.push_screen(NewRunScreen("run", app.results_dir)),
    )
    yield (
        "New sweep",
        "open the form for a sweep (conditions × seeds)",
        lambda: app.push_screen(NewRunScreen("sweep", app.results_dir)),
    )
    if not isinstance(screen, BrowserScreen):
        yield (
            "Browse experiments",
            "every experiment under the results directory",
            lambda: app.push_screen(BrowserScreen(app.results_dir)),
        )
    selected = selected_directory(app, screen)
    if isinstance(screen, BrowserScreen) and screen.check_action("resume", ()):
        yield ("Resume the selected experiment", "continue it on a run screen", screen.action_resume)
    if selected is not None:
        yield (
            "Export the selected to CSV",
            f"tidy CSV tables into {selected.name}/export",
            lambda: app.run_worker(export(app, selected), group="export", exit_on_error=False),
        )
        yield ("Copy the results path", str(selected), lambda: copy_path(app, selected))
        if audit_available() and (selected / "manifest.json").exists():
            yield (
                "Audit the selected",
                "re-read its decision replies with the current parsing rules",
                lambda: app.run_worker(audit(app, selected), group="audit", exit_on_error=False),
            )
    if isinstance(screen, RunScreen):
        yield ("Toggle real ids in the feed", "show agent ids beside the anonymous labels", screen.action_reveal_ids)
    yield ("Switch theme", "pick a colour theme", app.action_change_theme)


def selected_directory(app: Any, screen: Any) -> Path | None:
    """The experiment (or sweep) highlighted in the browser, or the live run's directory."""
    from acausal_tui.screens.browser import BrowserScreen

    if isinstance(screen, BrowserScreen):
        listed = screen.highlighted()
        return listed.directory if listed is not None else None
    return app.directory


def copy_path(app: Any, directory: Path) -> None:
    app.copy_to_clipboard(str(directory))
    app.notify(f"copied {directory}", timeout=4, markup=False)


async def export(app: Any, directory: Path) -> None:
    try:
        written, warnings = await anyio.to_thread.run_sync(export_csv, directory)
    except (ExportError, OSError) as exc:
        app.notify(str(exc), title="Export failed", severity="error", markup=False)
        return
    note = f"; skipped {len(warnings)} unreadable files" if warnings else ""
    app.notify(f"{len(written)} CSV files in {directory / 'export'}{note}", title="Exported", markup=False)


def audit_available() -> bool:
    """engine.audit (the `audit` command) exists: on branches merged with it."""
    return importlib.util.find_spec("engine.audit") is not None


async def audit(app: Any, directory: Path) -> None:
    from acausal_tui.screens.transcript import ReportScreen
    from engine.audit import AuditError, audit_experiment  # only offered when it exists

    try:
        report = await anyio.to_thread.run_sync(audit_experiment, directory)
    except AuditError as exc:
        app.notify(str(exc), title="Audit failed", severity="error", markup=False)
        return
    app.push_screen(ReportScreen(f"Audit of {directory.name}", "\n".join(report.lines())))


class DeskCommands(Provider):
    async def discover(self) -> Hits:
        for name, help, callback in desk_commands(self.app, self.screen):
            yield DiscoveryHit(name, callback, help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help, callback in desk_commands(self.app, self.screen):
            if (score := matcher.match(name)) > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help)
