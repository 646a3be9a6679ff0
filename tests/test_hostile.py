"""Hostile bytes from the server, end to end over HTTP against the stub: lone surrogates in
replies and error messages are logged (the run goes on; resume does not pay again), and
no raw control character of a server's text reaches the terminal in headless mode."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from acausal_tui.cli import main
from engine.models import ErrorRecord, ExperimentResult, StrategyRecord
from engine.store import read_json
from engine.textsafe import encodable, visible
from tests.support import stub_server as stub
from tests.support.experiment_files import ROOT
from tests.support.stub_run import calls_of, stub_config

KEY = "sk-or-v1-hostile-0123456789abcdef"
ESCAPES = "\x1b[2J\x1b[H\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\x9b31m"
INVISIBLE = "\u202e\u2066\u200b\ufeff"
SURROGATE = "\ud800"
HOSTILE_STRATEGY = (
    f"I reason {SURROGATE} about copies {ESCAPES} of myself {INVISIBLE}.\n\n"
    f"STRATEGY: Cooperate {SURROGATE}the first time; then copy the opponent's last move."
)
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xab-\xae\x8b-\x8f]|\xe2\x81[\xa6-\xa9]")


@pytest.fixture(autouse=True)
def api_key(monkeypatch, fast_backoff):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)


def strategies_are_hostile(seen: stub.Seen) -> stub.Reply | None:
    prompt = seen.body["messages"][0]["content"] if isinstance(seen.body, dict) else ""
    return None if stub.DECISION_MARKER in prompt else stub.completion(HOSTILE_STRATEGY)


def test_visible_and_encodable():
    shown = visible(f"a{ESCAPES}b{INVISIBLE}c{SURROGATE}\td\n", one_line=True)
    assert "\\x1b[2J" in shown and "\\x07" in shown and "\\x9b31m" in shown
    assert "<U+202E><U+2066><U+200B><U+FEFF>" in shown and shown.endswith("c\ufffd\\x09d\\x0a")
    assert not RAW_CONTROL.search(shown.encode())
    assert visible("tab\tand\nnewline") == "tab\tand\nnewline"
    assert encodable(f"x{SURROGATE}y\udfff") == "x\ufffdy\ufffd" and encodable("plain") == "plain"


def test_lone_surrogates_in_replies_are_logged_and_resume_pays_nothing_again(tmp_path, capsys):
    with stub.StubServer() as server:
        server.rule = strategies_are_hostile
        results = tmp_path / "results"
        code = main(
            [
                "run",
                "--headless",
                "--config",
                str(stub_config(tmp_path, server)),
                "--agents",
                "3",
                "--rounds",
                "2",
                "--seed",
                "3",
                "--results-dir",
                str(results),
            ]
        )
        out, err = capsys.readouterr()
        assert code in (0, 4), err
        directory = Path(out.strip())
        assert "internal error" not in err and "Traceback" not in err
        calls = calls_of(directory)
        strategy_calls = [c for c in calls if c.key.startswith("strategy/")]
        assert len(strategy_calls) == 6 and all(c.reply is not None and "\ufffd" in c.reply for c in strategy_calls)
        strategies = read_json(directory / "rounds" / "strategies_r1.json", list[StrategyRecord])
        assert all(s.strategy_text.startswith("Cooperate \ufffdthe first time") for s in strategies)
        assert read_json(directory / "experiment_results.json", ExperimentResult).status == "completed"

        # Interrupted before round 2 was summarised: resume answers every call from the log.
        (directory / "rounds" / "summary_r2.json").unlink()
        (directory / "experiment_results.json").unlink()
        manifest = json.loads((directory / "manifest.json").read_text())
        (directory / "manifest.json").write_text(json.dumps({**manifest, "status": "aborted"}))
        paid = server.count
        assert main(["resume", str(directory), "--headless"]) in (0, 4)
        assert server.count == paid
        assert read_json(directory / "experiment_results.json", ExperimentResult).status == "completed"


def test_a_lone_surrogate_in_an_error_message_is_logged(tmp_path, capsys):
    with stub.StubServer() as server:
        server.rule = stub.from_request(0, stub.error(400, f"bad {SURROGATE} request {ESCAPES}"))
        results = tmp_path / "results"
        code = main(
            [
                "run",
                "--headless",
                "--config",
                str(stub_config(tmp_path, server)),
                "--agents",
                "2",
                "--rounds",
                "1",
                "--seed",
                "3",
                "--results-dir",
                str(results),
            ]
        )
        out, err = capsys.readouterr()
        assert code == 1 and "Traceback" not in err and "internal error" not in err
        directory = Path(out.strip())
        errors = [
            msgspec.json.decode(line, type=ErrorRecord)
            for line in (directory / "experiment_errors.log").read_bytes().splitlines()
        ]
        assert any(f"bad \ufffd request {ESCAPES}" in e.message for e in errors)
        calls = calls_of(directory)
        assert calls and all(c.error and "\ufffd" in c.error for c in calls)


@pytest.mark.parametrize(
    "fault",
    [
        stub.error(401, f"No auth {ESCAPES}{INVISIBLE}{SURROGATE}"),
        stub.error(400, f"Bad {ESCAPES}{INVISIBLE}{SURROGATE}", in_body_200=True),
    ],
    ids=["401", "400-in-200"],
)
def test_no_raw_control_character_reaches_the_terminal_headless(tmp_path, fault):
    """A real process, its stdout and stderr read as bytes."""
    with stub.StubServer() as server:
        server.rule = stub.from_request(0, fault)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "acausal_tui",
                "run",
                "--headless",
                "--config",
                str(stub_config(tmp_path, server)),
                "--agents",
                "2",
                "--rounds",
                "1",
                "--seed",
                "3",
                "--results-dir",
                str(tmp_path / "results"),
            ],
            capture_output=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "OPENROUTER_API_KEY": KEY},
        )
    assert proc.returncode == 1, proc.stderr
    for stream in (proc.stdout, proc.stderr):
        assert not RAW_CONTROL.search(stream.replace(b"\n", b"")), stream
    assert b"\\x1b[2J" in proc.stderr and b"\\x1b]52;c;" in proc.stderr and b"<U+202E>" in proc.stderr
    assert b"Traceback" not in proc.stderr
