"""Image folders written here round-trip to the exact uint8 pixels, splits and groups; bad folders raise naming the culprit."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
import torch
from PIL import Image

import medfew.data.folder
from medfew.data import UNLABELED, load_image_folder


def grey(value: int, size: tuple[int, int] = (8, 6)) -> np.ndarray:
    """A (H, W) uint8 ramp starting at ``value``."""
    return (value + np.arange(size[0] * size[1]).reshape(size)).astype(np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """benign: 2 grey PNGs (8 x 6); malignant: 1 grey BMP, 1 grey TIFF (sorted names: benign first)."""
    save(tmp_path / "benign" / "b1.png", grey(0))
    save(tmp_path / "benign" / "b0.png", grey(100))
    save(tmp_path / "malignant" / "m0.bmp", grey(50))
    save(tmp_path / "malignant" / "sub" / "m1.tif", grey(150))
    (tmp_path / "malignant" / "notes.txt").write_text("ignored")
    return tmp_path


def test_labelled_folder_round_trips(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = load_image_folder(folder)
    read = "Read are PNG / JPEG / BMP / TIFF images, inside the class folders"
    assert f"1 files not read (1 .txt): malignant/notes.txt. {read}" in caplog.text
    assert data.class_names == ("benign", "malignant")
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert list(data.filenames) == ["benign/b0.png", "benign/b1.png", "malignant/m0.bmp", "malignant/sub/m1.tif"]
    assert data.images.shape == (4, 1, 8, 6) and data.images.dtype == torch.uint8
    for image, start in zip(data.images, (100, 0, 50, 150)):
        assert torch.equal(image[0], torch.from_numpy(grey(start)))


def test_every_file_not_read_is_named(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(folder / "loose.png", grey(7))  # beside the class folders: no class
    save(folder / "benign" / "b2.webp", grey(9))
    (folder / "benign" / ".DS_Store").write_text("hidden")
    (folder / "groups.csv").write_text("file,group\nbenign/b0.png,p1\n")
    assert len(load_image_folder(folder)) == 4
    warning = caplog.records[-1].getMessage()
    assert "3 files not read (1 .webp, 1 .png, 1 .txt): benign/b2.webp, loose.png, malignant/notes.txt." in warning
    assert "DS_Store" not in warning and "groups.csv" not in warning


def test_relative_path_is_under_the_root(folder: Path) -> None:
    data = load_image_folder(folder.name, root=folder.parent)
    assert len(data) == 4


def test_rgb_jpeg_and_channel_conversion(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    save(tmp_path / "a" / "x.jpg", rgb)
    save(tmp_path / "b" / "y.png", rgb)
    data = load_image_folder(tmp_path)
    assert data.images.shape == (2, 3, 8, 8)
    assert data.images[1, :, 0, 0].tolist() == [200, 100, 50]  # PNG is lossless
    assert (data.images[0].int() - data.images[1].int()).abs().max() <= 3  # JPEG of a flat colour
    as_grey = load_image_folder(tmp_path, channels=1)
    assert as_grey.images[1, 0, 0, 0].item() == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)


def test_colour_turned_grey_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Stained cells lose their colour under channels=1: a warning names it; a grey scan saved as RGB (JPEG) is no colour."""
    ramp = grey(0, size=(16, 16))
    save(tmp_path / "a" / "xray.jpg", np.stack([ramp] * 3, axis=-1))
    cells = np.zeros((16, 16, 3), np.uint8)
    cells[..., 0], cells[..., 2] = 180, 90  # purple
    save(tmp_path / "b" / "cell0.png", cells)
    save(tmp_path / "b" / "cell1.png", cells[..., ::-1].copy())
    load_image_folder(tmp_path, channels=3)
    load_image_folder(tmp_path / "a", labelled=False, channels=1)
    assert "colour" not in caplog.text
    load_image_folder(tmp_path, channels=1)
    assert f"{tmp_path / 'b' / 'cell0.png'} and 1 more of the 3 images are in colour; channels=1 (data.channels) turns them grey" in caplog.text


def test_sixteen_bit_scaled_to_uint8(tmp_path: Path) -> None:
    values = np.array([[0, 257, 65535], [128 * 257, 1000, 65534]], dtype=np.uint16)
    for suffix in ("png", "tif"):
        save(tmp_path / "scans" / f"s.{suffix}", values)
    data = load_image_folder(tmp_path)
    expected = [[0, 1, 255], [128, 4, 255]]  # round(value / 257)
    assert data.images[:, 0].tolist() == [expected, expected]


def test_twelve_bit_scans_in_sixteen_bit_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(tmp_path / "scans" / "s.png", np.array([[0, 4095, 2048, 1]], dtype=np.uint16))
    assert load_image_folder(tmp_path).images[0, 0].tolist() == [[0, 16, 8, 0]]  # as 16-bit: dark
    assert "brightest pixel of its 1 images is 16 of 255" in caplog.text and "data.source.bits" in caplog.text
    assert load_image_folder(tmp_path, bits=12).images[0, 0].tolist() == [[0, 255, 128, 0]]  # round(v * 255 / 4095)
    save(tmp_path / "scans" / "t.png", np.array([[0, 4096, 0, 0]], dtype=np.uint16))
    with pytest.raises(ValueError, match=r"t.png: mode I;16 values span 0..4096; expected 12-bit \(0..4095, data.source.bits\)"):
        load_image_folder(tmp_path, bits=12)
    with pytest.raises(ValueError, match="bits must be 8 to 16"):
        load_image_folder(tmp_path, bits=24)


def test_palette_and_bilevel_images(tmp_path: Path) -> None:
    save(tmp_path / "bilevel" / "c" / "b.png", np.array([[0, 255], [255, 0]], np.uint8), mode="1")
    assert load_image_folder(tmp_path / "bilevel").images[0, 0].tolist() == [[0, 255], [255, 0]]
    colours = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    save(tmp_path / "palette" / "c" / "p.png", colours, mode="P")
    assert load_image_folder(tmp_path / "palette").images[0].permute(1, 2, 0).tolist() == colours.tolist()


def test_resize_to_common_size(tmp_path: Path) -> None:
    save(tmp_path / "a" / "big.png", np.full((20, 10), 7, np.uint8))
    save(tmp_path / "a" / "small.png", np.full((5, 5), 9, np.uint8))
    data = load_image_folder(tmp_path, size=4)
    assert data.images.shape == (2, 1, 4, 4)
    assert data.images[:, 0, 0, 0].tolist() == [7, 9]


def test_images_are_resized_as_they_are_read(folder: Path, one_at_a_time, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder of large scans needs memory for its images at ``size``, not at full resolution."""
    read = one_at_a_time(medfew.data.folder.read_image)
    monkeypatch.setattr(medfew.data.folder, "read_image", read)
    data = load_image_folder(folder, size=4)
    assert len(read.reads) == 4 and data.images.shape == (4, 1, 4, 4)


def test_differing_sizes_need_size(tmp_path: Path) -> None:
    first = save(tmp_path / "a" / "big.png", np.zeros((20, 10), np.uint8))
    second = save(tmp_path / "a" / "small.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="differ in size") as error:
        load_image_folder(tmp_path)
    assert str(first) in str(error.value) and str(second) in str(error.value) and "size=" in str(error.value)


def test_mixed_grey_and_rgb_need_channels(tmp_path: Path) -> None:
    save(tmp_path / "a" / "grey.png", np.zeros((4, 4), np.uint8))
    rgb = save(tmp_path / "a" / "rgb.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="differ in channels") as error:
        load_image_folder(tmp_path)
    assert str(rgb) in str(error.value)
    assert load_image_folder(tmp_path, channels=3).images.shape == (2, 3, 4, 4)


def test_unlabeled_flat_folder(tmp_path: Path) -> None:
    save(tmp_path / "one.png", grey(1))
    save(tmp_path / "nested" / "two.png", grey(2))
    data = load_image_folder(tmp_path, labelled=False)
    assert data.class_names == () and data.labels.tolist() == [UNLABELED, UNLABELED]
    assert list(data.filenames) == ["nested/two.png", "one.png"]


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        load_image_folder(tmp_path / "nowhere")


def test_no_class_folders(tmp_path: Path) -> None:
    save(tmp_path / "loose.png", grey(0))
    with pytest.raises(ValueError, match="no class subfolders.*found 1 files.*labelled=false"):
        load_image_folder(tmp_path)


def test_empty_class_folder_is_named(folder: Path) -> None:
    (folder / "normal").mkdir()
    (folder / "normal" / "readme.txt").write_text("not an image")
    with pytest.raises(ValueError, match=f"class folder {folder / 'normal'} is empty"):
        load_image_folder(folder)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_image_is_named(folder: Path, damage: str) -> None:
    target = folder / "benign" / "b1.png"
    if damage == "truncate":
        save(target, np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
        target.write_bytes(target.read_bytes()[:200])
    else:
        target.write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=f"cannot read image {target}: corrupt or truncated"):
        load_image_folder(folder)


@pytest.mark.parametrize(
    ("mode", "suffix", "reason"),
    [
        ("RGBA", "png", "alpha channel"),
        ("LA", "png", "alpha channel"),
        ("CMYK", "jpg", "convert it"),
        ("F", "tif", "convert it"),
    ],
)
def test_unsupported_mode_is_named(folder: Path, mode: str, suffix: str, reason: str) -> None:
    target = save(folder / "benign" / f"odd.{suffix}", grey(0), mode=mode)
    with pytest.raises(ValueError, match=f"unsupported image mode {mode} in {target}: .*{reason}"):
        load_image_folder(folder)


def test_palette_with_transparency_is_refused(folder: Path) -> None:
    target = folder / "benign" / "pal.png"
    Image.fromarray(grey(0)).convert("P").save(target, transparency=0)
    with pytest.raises(ValueError, match=f"mode P with transparency in {target}"):
        load_image_folder(folder)


def test_linked_folders_are_followed_and_a_dangling_link_is_named(folder: Path, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for i in range(3):
        save(elsewhere / f"e{i}.png", grey(10 * i))
    (folder / "benign" / "batch2").symlink_to(elsewhere, target_is_directory=True)
    (folder / "benign" / "batch2_again").symlink_to(folder / "benign", target_is_directory=True)  # a loop
    data = load_image_folder(folder)
    assert data.class_counts().tolist() == [2 + 3, 2]
    assert sorted(data.filenames[:5]) == ["benign/b0.png", "benign/b1.png", "benign/batch2/e0.png", "benign/batch2/e1.png", "benign/batch2/e2.png"]
    (folder / "malignant" / "moved.png").symlink_to(folder / "nowhere.png")
    with pytest.raises(FileNotFoundError, match=f"{folder / 'malignant' / 'moved.png'} is a link to {folder / 'nowhere.png'}, which does not exist"):
        load_image_folder(folder)


def test_several_frames_are_refused(folder: Path) -> None:
    target = folder / "malignant" / "stack.tif"
    Image.fromarray(grey(0)).save(target, save_all=True, append_images=[Image.fromarray(grey(9)), Image.fromarray(grey(20))])
    with pytest.raises(ValueError, match=f"image {target} has 3 frames .* save each frame as its own file"):
        load_image_folder(folder)


def test_the_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A camera JPEG stored 8 wide x 6 high, tagged 'rotate 90 degrees clockwise' (6): read 6 wide x 8 high, upright."""
    stored = np.zeros((6, 8), dtype=np.uint8)
    stored[0, :] = 255  # the stored top row is bright; rotated clockwise it becomes the right column
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    (tmp_path / "x").mkdir()
    Image.fromarray(stored).save(tmp_path / "x" / "photo.jpg", exif=exif, quality=100)
    image = load_image_folder(tmp_path).images[0, 0]
    assert image.shape == (8, 6)
    assert image[:, -1].float().mean() > 200 and image[:, 0].float().mean() < 50


def test_data_config_instantiates(folder: Path) -> None:
    configs = Path(__file__).resolve().parents[2] / "configs"
    with initialize_config_dir(str(configs), version_base="1.3"):
        cfg = compose("audit", overrides=["data=image_folder", f"data.source.path={folder}", "data.image_size=4"])
    data = instantiate(cfg.data.source)
    assert data.images.shape == (4, 1, 4, 4) and data.class_names == ("benign", "malignant")


def split_folder(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    """{split: {class: n images}} as root/split/class/i.png, each image a distinct ramp."""
    start = 0
    for split, classes in layout.items():
        for name, count in classes.items():
            for i in range(count):
                save(root / split / name / f"{i}.png", grey(start))
                start += 1
    return root


def test_train_test_folders_are_the_official_split(tmp_path: Path) -> None:
    split_folder(tmp_path, {"train": {"b": 2, "a": 1}, "test": {"a": 1}, "val": {"b": 1}})
    data = load_image_folder(tmp_path)
    assert data.class_names == ("a", "b")
    assert data.split.tolist() == ["train"] * 3 + ["val", "test"]
    assert data.labels.tolist() == [0, 1, 1, 1, 0]
    assert list(data.filenames) == ["train/a/0.png", "train/b/0.png", "train/b/1.png", "val/b/0.png", "test/a/0.png"]
    assert data.images[4, 0, 0, 0].item() == 3 and data.groups is None


def test_split_layout_errors(tmp_path: Path) -> None:
    split_folder(tmp_path, {"train": {"a": 1}, "test": {"a": 1, "zebra": 1}})
    with pytest.raises(ValueError, match=f"{tmp_path / 'test'} has class folders \\['zebra'\\] that {tmp_path / 'train'} lacks"):
        load_image_folder(tmp_path)
    split_folder(tmp_path, {"validation": {"a": 1}})
    with pytest.raises(ValueError, match="has folders test, train, validation: a split layout holds only train/, test/ and optionally val/"):
        load_image_folder(tmp_path)
    assert len(load_image_folder(tmp_path, labelled=False)) == 4  # an unlabelled pool ignores the layout


def test_groups_csv(tmp_path: Path) -> None:
    split_folder(tmp_path, {"train": {"a": 3}, "test": {"a": 1}})
    (tmp_path / "groups.csv").write_text("file,group,note\ntrain/a/0.png,p2,x\n./train/a/2.png,p1,\ntest\\a\\0.png,p2,\n")
    assert load_image_folder(tmp_path).groups.tolist() == [1, 2, 0, 1]  # p1 -> 0, p2 -> 1; unlisted 1.png: its own
    (tmp_path / "groups.csv").write_text("file,group\ntrain/a/0.png,p1\ntrain/a/9.png,p1\nnotes.txt,p3\n")
    with pytest.raises(ValueError, match="groups.csv names 2 files that are not images read from .*: notes.txt, train/a/9.png"):
        load_image_folder(tmp_path)
    (tmp_path / "groups.csv").write_text("path,patient\ntrain/a/0.png,p1\n")
    with pytest.raises(ValueError, match="groups.csv: columns are \\['path', 'patient'\\]; expected a header row file,group"):
        load_image_folder(tmp_path)
    (tmp_path / "groups.csv").write_text("file,group\ntrain/a/0.png,p1\ntrain/a/0.png,p2\n")
    with pytest.raises(ValueError, match="groups.csv line 3: train/a/0.png is listed in groups 'p1' and 'p2'"):
        load_image_folder(tmp_path)


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A 1 x 1 grey PNG whose header claims width x height (Pillow checks the size before decoding)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + png[24:29]  # IHDR data: size, depth, colour, ...
    png[16:29] = header
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(png))
    return path


@pytest.mark.parametrize("width", [10_000, 20_000])  # over the limit (a warning in Pillow), over twice it (an error)
def test_decompression_bomb_is_named(folder: Path, width: int) -> None:
    target = bomb_png(folder / "benign" / "huge.png", width, 10_000)
    pixels, limit = width * 10_000, Image.MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match=f"image {target} has {pixels} pixels, over Pillow's decompression-bomb limit "
                       f"of {limit} pixels; if you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS"):  # fmt: skip
        load_image_folder(folder)
