"""`medfew predict` on inputs as they come: nested folders of grey and colour images, a broken file, a note,
npz files; Grad-CAM overlays for backbone learners and the reason why not for pixel learners."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from medfew.data.episodes import to_float
from medfew.deploy.bundle import load_bundle
from medfew.deploy.explain import score_network
from medfew.deploy.predict import predict_input


def read_rows(path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


@pytest.fixture
def mixed_folder(tmp_path, deploy_helpers):
    """Grey and colour images in nested folders, a grey scan saved as RGB, a 16-bit PNG, a wide image,
    a broken PNG and a text file."""
    _, tiny_images, save_png = deploy_helpers
    images = tiny_images().images
    folder = tmp_path / "scans"
    save_png(images[0], folder / "a" / "grey.png")
    save_png(images[8].expand(3, -1, -1), folder / "a" / "b" / "grey_as_rgb.png")
    colour = images[16].expand(3, -1, -1).clone()
    colour[0] //= 3  # a real colour cast
    save_png(colour, folder / "a" / "b" / "colour.png")
    Image.fromarray(np.full((28, 28), 40000, dtype=np.uint16)).save(folder / "sixteen_bit.png")
    Image.fromarray(np.zeros((20, 40), dtype=np.uint8)).save(folder / "wide.bmp")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "notes.txt").write_text("request 12")
    return folder


def test_a_mixed_folder_lists_every_file_with_what_was_done(mixed_folder, tmp_path, deploy_helpers):
    deploy_helpers[0]("prototype_pixels", tmp_path)
    record = predict_input(load_bundle(tmp_path / "model"), mixed_folder, tmp_path / "run")
    rows = read_rows(tmp_path / "run" / "predictions.csv")
    assert sorted(rows) == [
        "a/b/colour.png", "a/b/grey_as_rgb.png", "a/grey.png", "broken.png", "notes.txt", "sixteen_bit.png", "wide.bmp",
    ]  # fmt: skip
    assert rows["a/grey.png"]["predicted"] == "cyst" and rows["a/grey.png"]["note"] == ""
    assert rows["a/b/grey_as_rgb.png"]["note"] == ""  # grey content: nothing lost
    assert rows["a/b/colour.png"]["note"] == "colour image converted to grey (the model was trained on grey images)"
    assert rows["wide.bmp"]["note"] == "resized from 40 x 20 to 28 x 28: aspect ratio not kept"
    assert rows["sixteen_bit.png"]["predicted"] in ("cyst", "mass", "normal")
    assert rows["broken.png"]["predicted"] == "" and rows["broken.png"]["note"].startswith("unreadable: cannot read image broken.png")
    assert rows["notes.txt"]["p_cyst"] == "" and rows["notes.txt"]["note"].startswith("not read: not an image file (.txt)")
    probs = [float(rows["a/grey.png"][f"p_{c}"]) for c in ("cyst", "mass", "normal")]
    assert sum(probs) == pytest.approx(1, abs=1e-5)
    assert record["files"] == 7 and record["converted"] == 2 and len(record["not_read"]) == 2


def test_a_colour_bundle_repeats_grey_images_and_says_so(tmp_path, deploy_helpers):
    fit_and_save, tiny_images, save_png = deploy_helpers
    fit_and_save("prototype_pixels", tmp_path, tiny_images(channels=3))
    save_png(tiny_images().images[0], tmp_path / "grey.png")
    predict_input(load_bundle(tmp_path / "model"), tmp_path / "grey.png", tmp_path / "run")
    row = read_rows(tmp_path / "run" / "predictions.csv")["grey.png"]
    assert row["predicted"] and row["note"] == "grey image repeated to 3 channels (the model was trained on colour images)"


def test_npz_images_are_scans_and_unconvertible_ones_an_error(tmp_path, deploy_helpers):
    fit_and_save, tiny_images, _ = deploy_helpers
    fit_and_save("logreg_pixels", tmp_path)
    bundle = load_bundle(tmp_path / "model")
    np.savez(tmp_path / "test.npz", test_images=tiny_images().images[:3, 0].numpy())
    predict_input(bundle, tmp_path / "test.npz", tmp_path / "run")
    assert list(read_rows(tmp_path / "run" / "predictions.csv")) == [f"test.npz[test_images][{i}]" for i in range(3)]
    np.savez(tmp_path / "rgba.npz", images=np.zeros((2, 28, 28, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"rgba.npz: images has shape \(2, 28, 28, 4\).*cannot be converted to the bundle's 1-channel"):
        predict_input(bundle, tmp_path / "rgba.npz", tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="input .*missing not found"):
        predict_input(bundle, tmp_path / "missing", tmp_path / "run")


def test_explain_writes_grad_cam_overlays_and_a_contact_sheet(mixed_folder, tmp_path, deploy_helpers):
    deploy_helpers[0]("prototype", tmp_path)
    record = predict_input(load_bundle(tmp_path / "model"), mixed_folder, tmp_path / "run", explain=True)
    explained = record["explanations"]
    assert explained["written"] == 5 and explained["reason"] == ""
    overlay = Image.open(tmp_path / "run" / "explain" / "a" / "b" / "colour.png.cam.png")
    assert overlay.size == (388, 210) and overlay.mode == "RGB"  # scan | overlay, caption below
    left, right = (np.asarray(overlay)[:192, x : x + 192].astype(int) for x in (0, 196))
    assert np.abs(left - right).mean() > 10  # the heat map changes the right half
    assert Image.open(tmp_path / "run" / "explain" / "contact_sheet.png").size[0] > 500


def test_a_pixel_learner_says_why_it_has_no_explanation(tmp_path, deploy_helpers):
    fit_and_save, tiny_images, save_png = deploy_helpers
    fit_and_save("logreg_pixels", tmp_path)
    save_png(tiny_images().images[0], tmp_path / "scans" / "x.png")
    record = predict_input(load_bundle(tmp_path / "model"), tmp_path / "scans", tmp_path / "run", explain=True)
    assert record["explanations"] == {
        "written": 0, "reason": "logreg_pixels works on raw pixels (backbone: null): there are no convolutional feature maps for Grad-CAM",
    }  # fmt: skip
    assert not (tmp_path / "run" / "explain").exists()


@pytest.mark.parametrize("name", ["finetune", "prototype", "logreg", "protonet", "matching_net", "anil"])
def test_every_backbone_learner_kind_gets_a_map_for_its_prediction(name, tmp_path, deploy_helpers):
    """Grad-CAM follows scores whose softmax is the learner's prediction, for every kind of state."""
    fit_and_save, tiny_images, save_png = deploy_helpers
    fit_and_save(name, tmp_path, tiny_images(size=32))
    bundle = load_bundle(tmp_path / "model")
    query = to_float(tiny_images(size=32).images[:6])
    torch.testing.assert_close(torch.softmax(score_network(bundle)(query), dim=1), bundle.predict(query), rtol=0, atol=1e-5)
    for i in (0, 9, 20):
        save_png(tiny_images(size=32).images[i], tmp_path / "scans" / f"{i}.png")
    record = predict_input(load_bundle(tmp_path / "model"), tmp_path / "scans", tmp_path / "run", explain=True)
    assert record["explanations"]["written"] == 3, record["explanations"]
    assert sorted(p.name for p in (tmp_path / "run" / "explain").iterdir()) == ["0.png.cam.png", "20.png.cam.png", "9.png.cam.png", "contact_sheet.png"]
