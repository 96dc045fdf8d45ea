"""Contact sheets: flagged images in a grid, each captioned with its file and why it is flagged.

One PNG per page of at most ``per_page`` tiles (``<name>.png``, then ``<name>-page2.png`` ...);
the title says which page of how many. A tile is one image, or a pair side by side (duplicates,
leakage), drawn at its own pixels (nearest neighbour), grey images in grey.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from medfew.data.audit import duplicate_pairs, perceptual_hashes  # noqa: E402
from medfew.data.dataset import UNLABELED, ImageData  # noqa: E402
from medfew.data.exclusion import image_names  # noqa: E402
from medfew.evaluation.label_issues import LabelIssues  # noqa: E402
from medfew.evaluation.plots import save_figure  # noqa: E402

NAME_LENGTH = 34  # characters of a file name shown under a tile (the start is cut: "…/class/0012.png")


def short(name: str, length: int = NAME_LENGTH) -> str:
    """``name``, its start cut to fit ``length`` characters."""
    return name if len(name) <= length else "…" + name[-(length - 1) :]


def side_by_side(first: Tensor, second: Tensor, gap: int = 2) -> Tensor:
    """(C, H, W) uint8 images as one (C, H, W1 + gap + W2) image with a white gap (heights padded)."""
    channels = max(first.shape[0], second.shape[0])
    first, second = (image.expand(channels, -1, -1) for image in (first, second))
    height = max(first.shape[1], second.shape[1])
    pad = lambda image: torch.nn.functional.pad(image, (0, 0, 0, height - image.shape[1]), value=255)  # noqa: E731
    return torch.cat([pad(first), torch.full((channels, height, gap), 255, dtype=torch.uint8), pad(second)], dim=2)


def page_path(path: Path, page: int) -> Path:
    return path if page == 1 else path.with_name(f"{path.stem}-page{page}{path.suffix}")


def contact_sheet(
    images: Sequence[Tensor], captions: Sequence[str], path: Path, title: str, per_page: int = 40, columns: int = 8,
    max_pages: int | None = None,
) -> list[Path]:
    """Write ``images`` ((C, H, W) uint8 each) with their ``captions`` as pages of a grid; return the pages.

    ``max_pages`` writes only the first pages (None: all); the title of the first says how many tiles
    in all, so a cut sheet never passes for a whole one.
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    if per_page < 1 or columns < 1:
        raise ValueError(f"a contact sheet needs per_page >= 1 and columns >= 1, got {per_page} and {columns}")
    pages = math.ceil(len(images) / per_page)
    drawn = min(pages, max_pages or pages)
    cut = f", the first {drawn} drawn: the csv lists all" if drawn < pages else ""
    written = []
    for page in range(1, drawn + 1):
        chunk = range((page - 1) * per_page, min(page * per_page, len(images)))
        written.append(draw_page([images[i] for i in chunk], [captions[i] for i in chunk], page_path(path, page),
                                 f"{title} ({len(images)} in all; page {page} of {pages}{cut})", columns))  # fmt: skip
    return written


def draw_page(images: list[Tensor], captions: list[str], path: Path, title: str, columns: int) -> Path:
    """One page: a grid of ``columns`` tiles a row, each image over its caption."""
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    aspect = min(max(image.shape[2] / image.shape[1] for image in images), 2.4)
    lines = max(caption.count("\n") + 1 for caption in captions)
    width, height = 1.9 * aspect, 1.9 + 0.13 * lines + 0.15  # inches of one tile: image, caption, margin
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.5), squeeze=False)
    for ax, image, caption in zip(axes.flat, images, captions):
        pixels = image.permute(1, 2, 0).numpy()
        if pixels.shape[2] == 1:
            ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(pixels, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(caption, fontsize=6.5, linespacing=1.15)
    for ax in axes.flat[len(images) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return save_figure(fig, path)


def label(data: ImageData, index: int) -> str:
    value = int(data.labels[index])
    return data.class_names[value] if value != UNLABELED else "unlabeled"


def pair_sheet(
    data: ImageData, pairs: Sequence[tuple[int, int]], distances: Sequence[int], path: Path, title: str,
    per_page: int = 20, max_pages: int | None = None,
) -> list[Path]:
    """Pairs of ``data`` images side by side, label conflicts first, then by pHash ``distances`` (0: identical
    hashes); each captioned with both files, the distance, their splits and labels."""
    names = image_names(data)
    order = sorted(range(len(pairs)), key=lambda p: (label(data, pairs[p][0]) == label(data, pairs[p][1]), distances[p], pairs[p]))
    tiles, captions = [], []
    for p in order:
        i, j = pairs[p]
        first, second = label(data, i), label(data, j)
        where = "" if data.split is None else f"; {data.split[i]} / {data.split[j]}"
        verdict = f"LABEL CONFLICT: {first} / {second}" if first != second else f"both {first}"
        tiles.append(side_by_side(data.images[i], data.images[j]))
        captions.append(f"{short(names[i])}\n{short(names[j])}\ndistance {distances[p]}{where}\n{verdict}")
    return contact_sheet(tiles, captions, path, title, per_page, columns=4, max_pages=max_pages)


def duplicate_sheets(data: ImageData, rows: Sequence[dict], out: Path, per_page: int = 20, threshold: int | None = 4,
                     max_pages: int | None = None) -> list[Path]:  # fmt: skip
    """duplicates.png: every pair linking a set of duplicates in ``data`` (``duplicate_pairs``); leakage.png:
    the audit's cross-split ``rows`` (``DuplicateReport.rows``), when the data has splits. Nothing to show: no file."""
    written = []
    pairs = [tuple(p) for p in duplicate_pairs(data.images, threshold).tolist()]
    if pairs:
        bits = perceptual_hashes(data.images)
        distances = [int((bits[i] != bits[j]).sum()) for i, j in pairs]
        what = "pixel-identical" if threshold is None else f"duplicate and near-duplicate (pHash within {threshold} bits)"
        written += pair_sheet(data, pairs, distances, out / "duplicates.png", f"{data.name}: {what} pairs", per_page, max_pages)
    if len(data.split_names()) >= 2 and rows:
        cross = [(int(r["first"]), int(r["second"])) for r in rows]
        title = f"{data.name}: leakage, the same image in two splits"
        written += pair_sheet(data, cross, [int(r["distance"]) for r in rows], out / "leakage.png", title, per_page, max_pages)
    return written


def label_issue_sheet(data: ImageData, issues: LabelIssues, path: Path, per_page: int = 40, max_pages: int | None = None) -> list[Path]:
    """The flagged images of ``issues`` (indices into ``data``), most likely mislabelled first, each
    captioned with its rank, file, given and suggested label and label quality."""
    names = image_names(data)
    captions = [
        f"#{rank} {short(names[i], 26)}\ngiven: {data.class_names[issues.labels[i]]}\n"
        f"suggested: {data.class_names[issues.suggested[i]]}\nquality {issues.quality[i]:.3f}"
        for rank, i in enumerate(issues.ranked.tolist(), start=1)
    ]
    tiles = [data.images[i] for i in issues.ranked.tolist()]
    title = f"{data.name}: likely mislabelled images, most likely first"
    return contact_sheet(tiles, captions, path, title, per_page, columns=8, max_pages=max_pages)
