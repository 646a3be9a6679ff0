"""The per-experiment index.json: the few figures the browser shows for a row, so listing
500 experiments reads 500 small files instead of 500 full results. It is a cache derived
from manifest.json, the round summaries and experiment_results.json: written atomically
(but not fsynced: one lost in a crash is rebuilt) with each round and at the end, and
rebuilt by a reader when missing, unreadable, older than them, or when a round file it
was built from changed size or time (an edit in place)."""

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from engine.files import read_json, write_json
from engine.loading import LoadedExperiment, load_experiment, round_file_problems
from engine.models import RoundSummary, Status
from engine.validity import verdict

INDEX_FILE = "index.json"
INDEX_VERSION = (
    4  # 2: the running sums that let a round be added; 3: round files checked, `files`; 4: no moves, not judged
)
SOURCES = ("manifest.json", "experiment_results.json")  # an index older than these is stale


class IndexEntry(msgspec.Struct, kw_only=True):
    id: str
    status: Status
    start_time: str
    rounds_done: int
    rounds: int
    agents: int
    condition: str
    provider: str
    main_model: str
    sub_model: str
    simulated: bool
    cooperation: float | None  # overall, model-decided moves (result) or mean of the rounds
    valid: bool | None = None  # None: not recorded (older result, or no result file yet)
    validity_reasons: list[str] = []
    cost: float | None = None  # None: no result file yet
    cost_is_estimate: bool = False
    has_result: bool = False
    problems: list[str] = []  # files that could not be read (round files included) when the index was built
    last_round: int = 0  # the highest round number among the summaries
    cooperated: float = 0.0  # sum over the rounds of cooperation rate x model-decided moves
    counted_moves: int = 0  # sum over the rounds with a rate of their model-decided moves
    files: dict[str, tuple[int, int]] = {}  # each summarised round's files: name -> (size, mtime_ns)
    version: int = INDEX_VERSION


def entry_from(loaded: LoadedExperiment, checked: Mapping[str, tuple[int, int]] = {}) -> IndexEntry | None:
    """The index of a loaded experiment; None when its manifest is unreadable. Every round's
    strategies and games files are read, but those of a round whose files still have the
    size and time `checked` records (a previous index's `files`) are known to be good."""
    manifest, result = loaded.manifest, loaded.current_result
    if manifest is None:
        return None
    files = round_files(loaded.directory, sorted(loaded.summaries))  # before reading them: a change after shows
    known = {
        n
        for n in loaded.summaries
        if all(
            (name := f"{kind}_r{n}.json") in files and tuple(checked.get(name, ())) == files[name]
            for kind in ("strategies", "games")
        )
    }
    # fallback moves count in no rate: weight each round by its model-decided moves,
    # summed in round order (as add_round sums them, so both give the same bits)
    cooperated, counted = 0.0, 0
    for number in sorted(loaded.summaries):
        cooperated, counted = add_moves(cooperated, counted, loaded.summaries[number], len(manifest.agents))
    entry = IndexEntry(
        id=loaded.directory.name,
        status=manifest.status,
        start_time=manifest.start_time,
        rounds_done=len(loaded.summaries),
        rounds=manifest.config.rounds,
        agents=len(manifest.agents),
        condition=manifest.condition.name,
        provider=manifest.provider,
        main_model=manifest.main_model,
        sub_model=manifest.sub_model,
        simulated=manifest.simulated,
        cooperation=cooperated / counted if counted > 0 else None,
        problems=loaded.problems + round_file_problems(loaded, skip=known),
        last_round=max(loaded.summaries, default=0),
        cooperated=cooperated,
        counted_moves=counted,
        files=files,
    )
    # (A manifest saying `running` beside a result file: a resume is under way, or died; the
    # older result of the stop it continues is not the experiment's state: current_result.)
    if result is not None:
        validity = result.validity
        entry = msgspec.structs.replace(
            entry,
            status=result.status,
            has_result=True,
            cost=result.total_cost,
            cost_is_estimate=result.cost_is_estimate,
            cooperation=result.acausal_indicators.overall_cooperation_rate,
            valid=verdict(validity),
            validity_reasons=list(validity.reasons) if validity else [],
        )
    return entry


def round_files(directory: Path, rounds: list[int]) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of each of these rounds' summary, strategies and games files found."""
    files: dict[str, tuple[int, int]] = {}
    for number in rounds:
        for kind in ("summary", "strategies", "games"):
            name = f"{kind}_r{number}.json"
            try:
                stat = os.stat(directory / "rounds" / name)
            except OSError:
                continue
            files[name] = (stat.st_size, stat.st_mtime_ns)
    return files


def add_moves(cooperated: float, counted: int, summary: RoundSummary, agents: int) -> tuple[float, int]:
    """The running sums with one more round's model-decided moves added."""
    if summary.cooperation_rate is None:
        return cooperated, counted
    moves = agents * (agents - 1) - summary.fallback_decisions  # per round: 2 x n(n-1)/2 games
    return cooperated + summary.cooperation_rate * moves, counted + moves


def update_index(directory: Path) -> None:
    """Rewrite DIR/index.json from the experiment's files (the store calls this after each
    manifest write). It is only a cache: failing to write it is not an error of the run,
    and the browser rebuilds a missing or stale one."""
    try:
        entry = entry_from(load_experiment(directory), checked(previous_index(directory)))
        if entry is not None:
            write_json(directory / INDEX_FILE, entry, durable=False)
    except Exception:  # a cache; the experiment's own files are what count
        pass


def previous_index(directory: Path) -> IndexEntry | None:
    """DIR/index.json when it is readable, of this version and of this directory."""
    try:
        entry = read_json(directory / INDEX_FILE, IndexEntry)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return entry if entry.version == INDEX_VERSION and entry.id == directory.name else None


def checked(entry: IndexEntry | None) -> dict[str, tuple[int, int]]:
    """The round files an index vouches for: all it records, when it found no problem."""
    return entry.files if entry is not None and not entry.problems else {}


def add_round(directory: Path, round: int, summary: RoundSummary) -> None:
    """Rewrite DIR/index.json after round `round` was written (its summary: `summary`): the
    previous index plus this round, without reading the other rounds again; the whole
    experiment is read only when the previous index is missing, unreadable or cannot simply
    be extended (an older version, a round not after its last, problems, a result shown).
    The round's strategies and games files are not read back: the store has just written
    them from the records themselves."""
    try:
        entry = next_entry(directory, round, summary)
        if entry is None:
            entry = entry_from(load_experiment(directory))
        if entry is not None:
            write_json(directory / INDEX_FILE, entry, durable=False)
    except Exception:  # a cache; the experiment's own files are what count
        pass


def next_entry(directory: Path, round: int, summary: RoundSummary) -> IndexEntry | None:
    """The previous index with `round` added, or None when it cannot be extended: then only
    a full rebuild gives what entry_from would."""
    try:
        entry = read_json(directory / INDEX_FILE, IndexEntry)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if (
        entry.version != INDEX_VERSION
        or entry.id != directory.name
        or entry.problems
        or entry.has_result
        or round <= entry.last_round
    ):
        return None
    cooperated, counted = add_moves(entry.cooperated, entry.counted_moves, summary, entry.agents)
    return msgspec.structs.replace(
        entry,
        rounds_done=entry.rounds_done + 1,
        last_round=round,
        cooperated=cooperated,
        counted_moves=counted,
        cooperation=cooperated / counted if counted > 0 else None,
        files=entry.files | round_files(directory, [round]),
    )


def fresh(directory: Path) -> bool:
    """index.json exists and is not older than the manifest, the result and rounds/."""
    try:
        mtime = (directory / INDEX_FILE).stat().st_mtime_ns
    except OSError:
        return False
    # A file replaced in rounds/ changes the directory's mtime: one stat covers every round.
    sources = [directory / name for name in SOURCES] + [directory / "rounds"]
    for path in sources:
        try:
            if path.stat().st_mtime_ns > mtime:
                return False
        except FileNotFoundError:
            continue
    return True


def unchanged(directory: Path, entry: IndexEntry) -> bool:
    """Every round file the index was built from has the size and time it had then: an edit
    in place, which changes neither rounds/ nor the index's age, shows (one stat a file)."""
    rounds = f"{directory}/rounds/"  # plain strings: this runs for every file of every row
    for name, (size, mtime) in entry.files.items():
        try:
            stat = os.stat(rounds + name)
        except OSError:
            return False
        if stat.st_size != size or stat.st_mtime_ns != mtime:
            return False
    return True


def read_index(directory: Path) -> tuple[IndexEntry | None, list[str]]:
    """The experiment's index entry and the problems met. A missing or stale index is built
    from the full files (and written, when the directory is writable); an unreadable
    experiment gives (None, problems)."""
    previous = previous_index(directory)
    if previous is not None and fresh(directory) and unchanged(directory, previous):
        return previous, []
    loaded = load_experiment(directory)
    entry = entry_from(loaded, checked(previous))
    if entry is not None:
        try:
            write_json(directory / INDEX_FILE, entry, durable=False)
        except OSError:
            pass  # a read-only results directory: the row is still shown
    return entry, entry.problems if entry is not None else loaded.problems
