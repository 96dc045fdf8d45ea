"""Lightning conventions shared by every trainer (SSL pretraining, meta-training).

Checkpoints every epoch into ``<workdir>/checkpoints`` (``last.ckpt`` included), resume
from it when the same command runs again, seed each epoch from (seed, epoch) so a resumed
run draws the same augmentations and episodes as an uninterrupted one, and stop with a
clear message on a non-finite loss, keeping the last good checkpoint. ``precision="auto"``
(Lightning's values otherwise) is decided here for every trainer and for plain PyTorch loops.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from medfew.seeding import derive_seed

#: Lightning precision values a plain PyTorch loop understands (``autocast_dtype``), after ``auto``
LOOP_PRECISIONS = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def bf16_supported(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu", "cuda") has bfloat16 arithmetic in hardware (CPU: AVX512-BF16 or AMX)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def resolve_precision(precision: str | int, device_type: str) -> str | int:
    """``auto`` -> ``bf16-mixed`` where ``device_type`` has bf16 hardware, else ``16-mixed`` on CUDA
    and ``32-true`` elsewhere; any other (Lightning) value is returned as is.

    bf16-mixed was the faster one for every network measured on an AVX512-BF16 CPU (BENCHMARKS.md, "Speed").
    """
    if precision != "auto":
        return precision
    if bf16_supported(device_type):
        return "bf16-mixed"
    return "16-mixed" if device_type == "cuda" else "32-true"


def autocast_dtype(precision: str | int, device_type: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (after ``auto``) for a plain loop; None: float32 throughout."""
    resolved = resolve_precision(precision, device_type)
    if resolved not in LOOP_PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of auto, {', '.join(LOOP_PRECISIONS)} (the values a plain training loop runs)")
    return LOOP_PRECISIONS[resolved]


def autocast(dtype: torch.dtype | None, device_type: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` (wrap forward + loss only), or a no-op for None."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def accelerator_device(accelerator: Any) -> str:
    """The torch device type a Lightning ``accelerator`` value trains on."""
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return {"gpu": "cuda"}.get(str(accelerator), str(accelerator))


class EpochSeed(Callback):
    """Reseed torch's global generator (used by kornia and dropout) at every epoch start."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.seeded_epoch = -1

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        torch.manual_seed(derive_seed(self.seed, trainer.current_epoch))
        self.seeded_epoch = trainer.current_epoch

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, batch_idx: int) -> None:
        # Lightning skips on_train_epoch_start for the first epoch after resuming from an
        # end-of-epoch checkpoint; seed that epoch here, before its first step
        if self.seeded_epoch != trainer.current_epoch:
            self.on_train_epoch_start(trainer, module)


class NonFiniteLossError(RuntimeError):
    pass


class StopOnNonFiniteLoss(Callback):
    """Raise when the training loss is NaN or infinite (or above ``max_loss``)."""

    def __init__(self, checkpoint_dir: Path, max_loss: float = 1e6) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.max_loss = max_loss

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        value = float(loss.detach()) if loss is not None else 0.0
        if not math.isfinite(value) or value > self.max_loss:
            last = self.checkpoint_dir / "last.ckpt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"training loss became {value} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"stopped ({kept}). Lower the learning rate or check the input data."
            )


def build_trainer(workdir: str | Path, seed: int, logger: Any = False, **trainer_kwargs: Any) -> pl.Trainer:
    """A Lightning Trainer with medfew's checkpoint, seeding and loss-guard callbacks.

    ``precision`` defaults to ``auto`` (``resolve_precision`` for the accelerator's device).
    """
    checkpoint_dir = Path(workdir) / "checkpoints"
    callbacks = [
        # the caller's first: Lightning keeps the order of checkpoint callbacks, so a best-model
        # checkpoint of an epoch is written before last.ckpt, whose copy of its state is then current
        *trainer_kwargs.pop("callbacks", []),
        # top-1 without a monitor = the latest epoch, overwritten under one name (Lightning's
        # save_last with save_top_k=0 writes last.ckpt only when training ends)
        ModelCheckpoint(
            dirpath=checkpoint_dir, filename="last", save_top_k=1, every_n_epochs=1, enable_version_counter=False
        ),
        EpochSeed(seed),
        StopOnNonFiniteLoss(checkpoint_dir),
    ]
    trainer_kwargs.setdefault("enable_model_summary", False)
    device_type = accelerator_device(trainer_kwargs.get("accelerator", "auto"))
    trainer_kwargs["precision"] = resolve_precision(trainer_kwargs.get("precision", "auto"), device_type)
    return pl.Trainer(default_root_dir=str(workdir), logger=logger, callbacks=callbacks, **trainer_kwargs)


def fit(trainer: pl.Trainer, module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit`` that resumes from ``<workdir>/checkpoints/last.ckpt`` when present.

    The checkpoint is read with ``weights_only=True`` (no pickled code runs) and checked
    against ``module`` first, so a foreign or tampered file is refused by name.
    """
    last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    if last.exists():
        check_checkpoint(last, module)
    trainer.fit(module, *args, ckpt_path=str(last) if last.exists() else None, weights_only=True, **kwargs)


def check_checkpoint(path: Path, module: torch.nn.Module) -> None:
    """Refuse ``path`` unless it loads weights-only and its state_dict fits ``module`` key by key."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for payloads, RuntimeError / EOFError for damaged files
        detail = (str(error).splitlines() or [""])[0]
        raise ValueError(
            f"refusing to resume from {path}: it does not load as a plain tensor checkpoint "
            f"(weights_only=True: {type(error).__name__}: {detail}). Delete it to start afresh"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"refusing to resume from {path}: not a Lightning checkpoint (no state_dict). Delete it to start afresh")
    saved = checkpoint["state_dict"]
    wanted = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in saved.items()}
    differ = sorted(k for k in wanted.keys() & found.keys() if wanted[k] != found[k])
    problems = [f"{k}: {found[k]} there, {wanted[k]} here" for k in differ[:3]]
    problems += [f"missing {k}" for k in sorted(wanted.keys() - found.keys())[:3]]
    problems += [f"unexpected {k}" for k in sorted(found.keys() - wanted.keys())[:3]]
    if problems:
        raise ValueError(
            f"{path} does not fit this {type(module).__name__} (checkpoint from another architecture or "
            f"settings?): {'; '.join(problems)}. Use another run folder or delete it"
        )
