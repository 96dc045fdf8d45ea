"""A quiet console: known third-party chatter hidden, medfew's own lines and every other warning kept.

``configure_console()`` runs once at the start of a command, before learn2learn (and so gym)
is first imported. It hides, and only hides:

- Lightning's per-Trainer INFO lines: device availability, the litlogger tip, "Loading
  `train_dataloader` to estimate ...", "`Trainer.fit` stopped: `max_epochs=...` reached", the
  mixed precision in use, "`Trainer(limit_...=1)` was configured ..." and,
  on GPUs, "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES ...";
- the FutureWarning that Lightning's own ``_pytree`` module triggers in torch (LeafSpec), and its
  warning that an epoch has fewer batches than ``log_every_n_steps`` (a small SSL pool);
- the "Gym has been unmaintained ..." notice that gym prints when learn2learn imports it;
- W&B's console lines (``WANDB_SILENT=true`` unless already set; medfew logs where the run went).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import sys
import warnings

#: logger -> starts of the INFO lines it prints for every Trainer and that tell a medfew user nothing
LIGHTNING_CHATTER = {
    # rank_zero_info logs to whichever of these two was imported last
    "pytorch_lightning.utilities.rank_zero": (
        "GPU available:", "TPU available:", "HPU available:", "IPU available:", "💡 Tip:",
        "Loading `train_dataloader` to estimate", "`Trainer.fit` stopped: `max_",
        "Using bfloat16 Automatic Mixed Precision", "Using 16bit Automatic Mixed Precision", "`Trainer(limit_",
    ),
    "pytorch_lightning.accelerators.cuda": ("LOCAL_RANK:",),
}  # fmt: skip
LIGHTNING_CHATTER["lightning_fabric.utilities.rank_zero"] = LIGHTNING_CHATTER["pytorch_lightning.utilities.rank_zero"]
#: (message regex, category, module regex) of warnings about third-party internals, not about a run
KNOWN_WARNINGS = [
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"pytorch_lightning\.utilities\._pytree"),
    # a small pool's epoch is shorter than the logging interval: every step's loss is still in metrics.csv
    (r"The number of training batches \(\d+\) is smaller than the logging interval", UserWarning, r"pytorch_lightning\."),
]


class DropLines(logging.Filter):
    """Drops log records whose message starts with one of ``starts``."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


FILTERS = {name: DropLines(starts) for name, starts in LIGHTNING_CHATTER.items()}


def configure_console(verbose: bool = False) -> None:
    """Hide the known third-party chatter listed in the module docstring; ``verbose`` changes nothing
    (everything shows). Safe to call more than once."""
    if verbose:
        return
    for name, line_filter in FILTERS.items():
        logging.getLogger(name).addFilter(line_filter)  # once: addFilter skips a filter already there
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    os.environ.setdefault("WANDB_SILENT", "true")
    import_gym_quietly()


def import_gym_quietly() -> None:
    """Import gym (learn2learn imports it) holding back the notice it prints; anything else it prints passes."""
    if "gym" in sys.modules or importlib.util.find_spec("gym") is None:
        return
    with contextlib.redirect_stderr(io.StringIO()) as captured:
        import gym
    from gym_notices.notices import notices  # a dependency of gym: the text it prints per version

    notice, text = notices.get(gym.__version__), captured.getvalue()
    sys.stderr.write(text.replace(f"{notice}\n", "", 1) if notice else text)


def duration(seconds: float) -> str:
    """'4.2 s', '42 s', '4.5 min', '12 min', '3 h 05 min' or '2 d 4 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"
