"""Progress of a comparison, on a terminal or in a log file.

On a terminal: one bar over every task left, showing the learner, fold, setting and seed being scored,
the elapsed time and an ETA from the plan. Elsewhere (``nohup``, SLURM, a pipe), where a bar would
never show: one log line per finished task with the same fields and the word ``ETA``. The ETA is
the plan's estimate of the work left: each finished task of a learner counts for an equal share of
that learner's estimate (its training stages included). With a time limit, ``out_of_time`` tells when
the limit has passed, so that the run stops after the task it is on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from tqdm import tqdm

from medfew.console import duration
from medfew.evaluation.plan import Plan

log = logging.getLogger(__name__)


class TimeLimitReached(RuntimeError):
    """The run's time limit passed; what was scored is saved and the same command resumes."""


class Progress:
    """Counts finished tasks (``update``) against ``total``; ``at(block)`` names the block being scored.

    Args:
        plan: the run's plan (ETA), or None: no ETA.
        total: tasks left to score.
        start: ``time.monotonic()`` when the command started (elapsed time and the limit count from it).
        limit_s: the time limit in seconds, or None.
        terminal: draw a bar (True) or write lines (False); None: a bar when stderr is a terminal.
        show: False hides everything (the helping processes of a DDP run).
        write: where lines go (``log.info``).
    """

    def __init__(
        self, plan: Plan | None, total: int, start: float, limit_s: float | None = None, terminal: bool | None = None,
        show: bool = True, write: Callable[[str], Any] | None = None,
    ) -> None:
        self.plan, self.total, self.start, self.limit_s = plan, total, start, limit_s
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.show, self.write = show, write or log.info
        self.done, self.block = 0, {}
        self.per_task = {learner.name: learner.seconds / learner.tasks for learner in plan.learners if learner.tasks} if plan else {}
        self.left = plan.seconds if plan else None
        bar = show and self.terminal
        form = "{desc} {n_fmt}/{total_fmt} |{bar}| elapsed {elapsed}{postfix}"  # tqdm writes ", " before the postfix
        self.bar = tqdm(total=total, unit="task", dynamic_ncols=True, disable=not bar, bar_format=form, postfix=self.eta())

    def at(self, block: Mapping[str, Any]) -> Progress:
        """Name the (learner, fold, setting, seed) of the tasks about to be scored; returns self."""
        self.block = dict(block)
        self.bar.set_description_str(self.where(), refresh=False)
        return self

    def where(self) -> str:
        block = self.block
        return f"{block.get('learner', '')}, fold {block.get('fold', '')}, {block.get('setting', '')}, seed {block.get('seed', '')}"

    def eta(self) -> str:
        if self.left is None:
            return "ETA unknown (no plan)"
        return f"ETA {duration(max(0.0, self.left))}"

    def update(self, n: int = 1) -> None:
        """Count ``n`` finished tasks of the current block."""
        self.done += n
        if self.left is not None:
            self.left -= n * self.per_task.get(self.block.get("learner"), 0.0)
        if self.terminal:
            self.bar.set_postfix_str(self.eta(), refresh=False)
            self.bar.update(n)
        elif self.show:
            elapsed = duration(time.monotonic() - self.start)
            self.write(f"task {self.done}/{self.total} done: {self.where()}; elapsed {elapsed}, {self.eta()}")

    def out_of_time(self) -> bool:
        return self.limit_s is not None and time.monotonic() - self.start > self.limit_s

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
