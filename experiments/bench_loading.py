"""Memory of loading a folder of large scans at the working size.

    python experiments/bench_loading.py [--images 120] [--side 2048] [--size 64]

Writes ``--images`` grey PNGs of side x side pixels into a temporary folder of two classes, then
measures, each in a fresh interpreter, the peak resident memory of importing ``medfew.data`` and
of importing it and loading the folder with ``load_image_folder(size=--size)``. Prints what the
load added against the reference: the folder's pixels at full resolution (images x side^2 bytes),
what a loader that keeps every decoded image until it stacks them needs at least.
Goal: well under 1x, since each image is resized as it is read. Linux (``ru_maxrss`` in KiB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

PEAK = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"


def write_folder(root: Path, images: int, side: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(images):
        path = root / f"class{i % 2}" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(path, compress_level=1)


def peak_bytes(code: str) -> int:
    """Peak resident memory of a fresh interpreter running ``code``."""
    result = subprocess.run([sys.executable, "-c", f"{code}\n{PEAK}"], check=True, capture_output=True, text=True)
    return int(result.stdout.split()[-1])


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--images", type=int, default=120)
    cli.add_argument("--side", type=int, default=2048, help="pixels per side of each written PNG")
    cli.add_argument("--size", type=int, default=64, help="the loader's working size (data.image_size)")
    args = cli.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_folder(Path(folder), args.images, args.side)
        imported = peak_bytes("import medfew.data")
        loaded = peak_bytes(f"from medfew.data import load_image_folder\nload_image_folder({folder!r}, size={args.size})")
    full, added = args.images * args.side**2, loaded - imported
    print(f"{args.images} grey PNGs of {args.side} x {args.side}, loaded at {args.size} px")
    print(f"full-resolution pixels (reference) {full / 2**20:8.0f} MiB")
    print(f"memory the load added              {added / 2**20:8.0f} MiB  ratio {added / full:.2f}x")


if __name__ == "__main__":
    main()
