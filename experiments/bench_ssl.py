"""Images/s of one SimCLR step on 64x64 PBC blood cells, ResNet-18, batch 64, two views.

(a) medfew: uint8 pool in memory on the device, views made by batch augmentation there;
(b) lightly's reference recipe: torchvision DataLoader workers with lightly's
    SimCLRTransform on PIL images, batches copied to the device;
(c) compute-only bound: the same model step on views made beforehand.
Same backbone, head, loss and optimizer in all three. Uses CUDA when present.

    python experiments/bench_ssl.py [--steps 12] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from lightly.transforms import SimCLRTransform
from lightly.utils.lars import LARS
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from medfew.data import load_labelled_npz, medical_augment
from medfew.models import create_backbone
from medfew.ssl import SimCLR, Views, ViewSpec

BATCH = 64


class PILImages(Dataset):
    """Each item: lightly's two SimCLR views of one image, made from a PIL image (as in its recipe)."""

    def __init__(self, images: Tensor, transform: Callable) -> None:
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> list[Tensor]:
        return self.transform(Image.fromarray(self.images[index]))


def endless(loader: DataLoader) -> Iterator:
    while True:
        yield from loader


def timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Images per second of ``steps`` calls of ``step`` (one batch of BATCH images each)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * BATCH / (time.perf_counter() - start)


def measure(steps: dict[str, Callable[[], None]], n: int, rounds: int, device: torch.device) -> dict[str, float]:
    """Median images/s of each step over ``rounds`` alternating rounds of ``n`` steps (evens out load drift)."""
    for step in steps.values():
        for _ in range(2):  # warmup
            step()
    runs = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            runs[name].append(timed(step, n, device))
    return {name: statistics.median(values) for name, values in runs.items()}


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per figure per round (default 6 on CPU, 50 on GPU)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three figures")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers for (b)")
    parser.add_argument(
        "--precision", choices=("auto", "32", "bf16"), default="auto",
        help="one precision for all three figures; auto = bf16 autocast where the hardware has it (CUDA, CPU with bf16)",
    )
    parser.add_argument("--data", default="pbc_bloodcells_64.npz", help="labelled npz, absolute or under the data root")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps = args.steps or (50 if device.type == "cuda" else 6)
    images = load_labelled_npz(args.data).images  # (2000, 3, 64, 64) uint8

    torch.manual_seed(0)
    method = SimCLR(create_backbone("resnet18", 3, 64)).to(device)
    optimizer = LARS(method.parameters(), lr=0.3 * BATCH / 256, momentum=0.9, weight_decay=1e-6)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_supported(device))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def train(views: list[Tensor]) -> None:
        with autocast:
            loss = method(views, 0, 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # (a) medfew: the pool on the device, one batch augmentation per view
    pool = images.to(device)
    views = Views(medical_augment(64), ViewSpec(), 64)
    generator = torch.Generator(device=device).manual_seed(0)

    def medfew_step() -> None:
        train(views(pool[torch.randint(len(pool), (BATCH,), device=device, generator=generator)]))

    # (b) lightly's reference recipe
    transform = SimCLRTransform(input_size=64, normalize=None)
    loader = DataLoader(
        PILImages(images, transform), batch_size=BATCH, shuffle=True, drop_last=True, num_workers=args.workers,
        persistent_workers=args.workers > 0, pin_memory=device.type == "cuda",
    )
    batches = endless(loader)

    def lightly_step() -> None:
        train([v.to(device, non_blocking=True) for v in next(batches)])

    # (c) compute-only bound: views already made
    fixed = [v.contiguous() for v in views(pool[:BATCH])]
    speed = measure({"a": medfew_step, "b": lightly_step, "c": lambda: train(fixed)}, steps, args.rounds, device)
    a, b, c = speed["a"], speed["b"], speed["c"]

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; batch {BATCH}, two views, 64x64, ResNet-18, {args.rounds} rounds x {steps} timed steps, {args.workers} workers for (b), {'bf16 autocast' if bf16 else 'fp32'}")
    print(f"(a) medfew in-memory batch augmentation: {a:8.1f} images/s")
    print(f"(b) lightly DataLoader + SimCLRTransform: {b:8.1f} images/s")
    print(f"(c) compute-only bound:                   {c:8.1f} images/s")
    print(f"a/b = {a / b:.2f}   a/c = {a / c:.3f}")


if __name__ == "__main__":
    main()
