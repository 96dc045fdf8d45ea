"""Writing run outputs safely: whole files or nothing, and one writer per run folder.

Every output (results, summaries, plots, JSON) goes through ``write_atomic``: it is written
to a temporary file beside its target and renamed over it, so a kill or a full disk leaves
the previous version in place, never a truncated one. ``check_writable`` tells at once when
a folder cannot be written. ``RunLock`` keeps a second run from writing into a folder that a
live run is using.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any], retries: int = 1) -> Path:
    """Call ``write(temporary)``, then rename the temporary file over ``path``.

    A failed attempt removes its temporary file; after ``retries`` more failures the error is
    raised as an ``OSError`` naming ``path`` and the OS error, and ``path`` keeps its old content.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    for attempt in range(retries + 1):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(temporary)
            os.replace(temporary, path)
            return path
        except OSError as error:
            temporary.unlink(missing_ok=True)
            if attempt == retries:
                raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
            log.warning("writing %s failed (%s); retrying once", path, error)
    return path


def check_writable(folder: str | os.PathLike, role: str = "run folder") -> Path:
    """Create ``folder`` if needed and a file in it (removed at once); an OSError whose message names
    the folder (as ``role``) and the cause when either fails, before any work that it should keep."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        cause = error.strerror or str(error)
        raise OSError(error.errno, f"cannot write to the {role} {folder} ({cause}); make it writable or choose another folder") from error
    return folder


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``write_atomic`` for a text file."""
    return write_atomic(path, lambda temporary: temporary.write_text(text))


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]], columns: list[str], retries: int = 1) -> Path:
    """``write_atomic`` (with ``retries``) for a CSV file of ``rows`` under a ``columns`` header (a header only when there are no rows)."""

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    return write_atomic(path, write, retries)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """``write_atomic`` for a JSON file (indented, strict: no NaN)."""
    return write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


class RunLock:
    """An exclusive lock on a run folder: ``<folder>/.lock`` holding the writer's PID and host.

    A second run finds the lock and stops at once, naming the holder. A lock left by a process
    that no longer runs on this host is taken over with a warning; a lock from another host
    cannot be checked and is refused (delete it when that run is known to be gone).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while not self.try_create():
            holder = self.holder()
            if holder is None:  # being written this instant, or left empty by a killed run
                time.sleep(0.2)
                holder = self.holder() or {"host": self.record["host"], "pid": -1}
            if holder.get("host") == self.record["host"] and not process_alive(int(holder.get("pid", -1))):
                log.warning("%s: taking over the lock of process %s, which no longer runs", self.path.parent, holder.get("pid"))
                self.path.unlink(missing_ok=True)
                continue
            raise RuntimeError(
                f"another run (PID {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}) is writing "
                f"to {self.path.parent}; wait for it to end or use another run folder (delete {self.path} only if that run is gone)"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.holder() == self.record:
            self.path.unlink(missing_ok=True)

    def try_create(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as f:
            json.dump(self.record, f)
        return True

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
