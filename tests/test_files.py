"""Outputs are whole or absent (atomic writes, one retry); one run at a time per run folder."""

import errno
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medfew.files import RunLock, write_atomic, write_text


def failing(times: int):
    """A writer that fails with ENOSPC ``times`` times (after writing half its bytes), then writes 'new'."""
    calls = []

    def write(temporary: Path) -> None:
        calls.append(temporary)
        temporary.write_text("ne")
        if len(calls) <= times:
            raise OSError(errno.ENOSPC, "No space left on device")
        temporary.write_text("new")

    return write, calls


def test_a_failed_write_is_retried_once(tmp_path: Path):
    path = write_text(tmp_path / "summary.md", "old")
    write, calls = failing(times=1)
    write_atomic(path, write)
    assert path.read_text() == "new" and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]


def test_a_write_that_keeps_failing_names_the_path_and_keeps_the_old_file(tmp_path: Path):
    path = write_text(tmp_path / "plot.png", "old")
    write, calls = failing(times=2)
    with pytest.raises(OSError, match=f"cannot write {path}: No space left on device"):
        write_atomic(path, write)
    assert path.read_text() == "old" and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]  # no temporary debris


def test_a_second_writer_stops_at_once_naming_the_first(tmp_path: Path):
    with RunLock(tmp_path):
        holder = json.loads((tmp_path / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(RuntimeError, match=rf"another run \(PID {os.getpid()} on {socket.gethostname()}.*is writing to {tmp_path}"):
            with RunLock(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()  # released


def test_the_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}))
    with caplog.at_level(logging.WARNING), RunLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert f"taking over the lock of process {dead.pid}" in caplog.text


def test_a_lock_from_another_host_is_refused(tmp_path: Path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "earlier"}))
    with pytest.raises(RuntimeError, match="PID 1 on elsewhere"):
        with RunLock(tmp_path):
            pass
    assert json.loads((tmp_path / ".lock").read_text())["host"] == "elsewhere"  # left alone
