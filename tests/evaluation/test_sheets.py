"""Contact sheets: one tile per flagged image up to the page limit, more pages when there are more."""

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from medfew.data import ImageData
from medfew.data.audit import audit_duplicates
from medfew.evaluation.sheets import contact_sheet, duplicate_sheets


def tiles(path) -> int:
    """Black tiles on a page: dark regions larger than any caption letter."""
    with Image.open(path) as page:
        dark = np.asarray(page.convert("L")) < 20
    regions, count = ndimage.label(dark)
    sizes = ndimage.sum(dark, regions, range(1, count + 1))
    return int((sizes > 2000).sum())


def test_every_image_gets_a_tile_and_pages_hold_at_most_per_page(tmp_path):
    images = [torch.zeros(1, 12, 12, dtype=torch.uint8) for _ in range(10)]
    pages = contact_sheet(images, [f"scan{i}.png\ngiven: a" for i in range(10)], tmp_path / "issues.png", "flagged", per_page=4, columns=2)
    assert [p.name for p in pages] == ["issues.png", "issues-page2.png", "issues-page3.png"]
    assert [tiles(p) for p in pages] == [4, 4, 2]
    with Image.open(pages[0]) as first, Image.open(pages[2]) as last:
        assert first.width > 200 and first.height > last.height  # two rows of tiles against one
    assert len(contact_sheet(images, ["x"] * 10, tmp_path / "cut.png", "flagged", per_page=4, max_pages=1)) == 1


def test_duplicate_and_leakage_sheets_show_each_pair(tmp_path):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=generator)
    images[3] = images[0]  # a copy across splits, with another label
    data = ImageData(images, torch.tensor([0, 1, 0, 1, 0, 1]), ("a", "b"), split=np.array(["train"] * 3 + ["test"] * 3),
                     filenames=np.array([f"f{i}.png" for i in range(6)]))  # fmt: skip
    rows = audit_duplicates(data, threshold=4).rows()
    pages = duplicate_sheets(data, rows, tmp_path, per_page=10, threshold=4)
    assert [p.name for p in pages] == ["duplicates.png", "leakage.png"]
    with Image.open(pages[1]) as sheet:
        assert sheet.width > 150 and sheet.height > 150
