"""Grad-CAM overlays of a bundle's predictions: where in each scan the predicted class's evidence lies.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
ICCV 2017, https://arxiv.org/abs/1610.02391, through torchcam (``torchcam.methods.GradCAM``). The
map is taken at the deepest layer whose output is a map at least ``MIN_SIDE`` pixels a side (a
ResNet-18 at 64 px: its third stage, 4 x 4, rather than the last, 2 x 2, which shows only quadrants;
torchcam's ``locate_candidate_layer``, larger than 1 x 1, where no layer is that large), for the predicted class, from scores whose softmax is the learner's
prediction: the fine-tuned or adapted network's logits, the prototype rules' distances, Matching
Networks' log attention, logistic regression's linear scores on the backbone's features.

A learner on raw pixels (``backbone: null``), a k-nearest-neighbour vote and an ensemble have no
such map; ``explain_scans`` then writes nothing and returns the reason. Otherwise it writes one
``<file>.cam.png`` per scan (the scan and its overlay side by side, the prediction below) and
``contact_sheet.png`` (the first ``SHEET_LIMIT`` overlays with file names and predictions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torchcam.methods import GradCAM  # noqa: E402
from torchcam.methods._utils import locate_candidate_layer  # noqa: E402
from torchcam.utils import overlay_mask  # noqa: E402

from medfew.data.episodes import to_float  # noqa: E402
from medfew.deploy.bundle import Bundle  # noqa: E402
from medfew.deploy.inputs import Scan  # noqa: E402
from medfew.evaluation.plots import save_figure  # noqa: E402
from medfew.files import write_atomic  # noqa: E402
from medfew.learners.classifiers import prototype_logits, protonet_scale  # noqa: E402
from medfew.learners.prototype import Centroids, NearestCentroid  # noqa: E402

SIDE = 192  # pixels of each panel of an overlay file
MIN_SIDE = 4  # the map Grad-CAM reads is the deepest one at least this many pixels a side
SHEET_LIMIT = 64  # overlays on the contact sheet


class Scores(nn.Module):
    """images -> (B, n_way) class scores whose softmax is the learner's prediction, differentiable in the images.

    ``network`` holds the modules the scores run through, so that Grad-CAM finds its layers.
    """

    def __init__(self, network: nn.Module, score: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.network = network
        self.score = score

    def forward(self, images: Tensor) -> Tensor:
        return self.score(images)


def score_network(bundle: Bundle) -> Scores | str:
    """The bundle's differentiable class scores, or why it has none."""
    learner, state, kind = bundle.learner, bundle.state, bundle.info["state"]["kind"]
    backbone = getattr(learner, "backbone", None)
    if kind == "members":
        return "an ensemble averages several networks' probabilities and has no one feature map: explain a bundle of each member"
    if kind == "network":
        return Scores(state, state)
    if kind == "adapted_network":
        return Scores(state.network, lambda x: state.network(x)[:, : state.n_way])
    if backbone is None:
        return f"{bundle.info['learner']} works on raw pixels (backbone: null): there are no convolutional feature maps for Grad-CAM"
    if kind == "centroids" and isinstance(learner, NearestCentroid) and isinstance(state, Centroids):
        return Scores(backbone, lambda x: prototype_logits(learner.transform(backbone(x), state.centre), state.prototypes, "euclidean", learner.scale))
    if kind == "tensor":
        scale = protonet_scale(learner.distance, learner.scale)
        return Scores(backbone, lambda x: prototype_logits(backbone(x), state, learner.distance, scale))
    if kind == "tensors":
        return Scores(backbone, lambda x: matching_scores(learner.scale * F.normalize(backbone(x), dim=-1), *state))
    if kind == "pipeline":
        return linear_scores(learner, backbone, state)
    return f"no Grad-CAM for a {kind} state"


def matching_scores(queries: Tensor, support: Tensor, one_hot: Tensor) -> Tensor:
    """Matching Networks' log p(y | x): the log of the (scaled) cosine attention over the support labels."""
    return torch.log((torch.softmax(queries @ support.T, dim=-1) @ one_hot).clamp_min(1e-12))


def linear_scores(learner: Any, backbone: nn.Module, pipeline: Any) -> Scores | str:
    """Logistic regression's scores (after the optional L2 normalisation and standardisation) on backbone features."""
    steps = [step for _, step in pipeline.steps]
    if not isinstance(steps[-1], LogisticRegression):
        return f"a {type(steps[-1]).__name__} vote over stored neighbours has no gradient for Grad-CAM"
    scaler = steps[0] if isinstance(steps[0], StandardScaler) else None
    device = next(backbone.parameters()).device
    coef, intercept = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (steps[-1].coef_, steps[-1].intercept_))

    def score(x: Tensor) -> Tensor:
        features = backbone(x)
        features = F.normalize(features, dim=1) if learner.normalize else features
        if scaler is not None:
            mean = torch.as_tensor(scaler.mean_ if scaler.with_mean else 0.0, dtype=torch.float32, device=device)
            scale = torch.as_tensor(scaler.scale_ if scaler.with_std else 1.0, dtype=torch.float32, device=device)
            features = (features - mean) / scale
        logits = features @ coef.T + intercept
        return torch.cat([-logits / 2, logits / 2], dim=1) if logits.shape[1] == 1 else logits  # binary: sigmoid = softmax of these

    return Scores(backbone, score)


def target_layer(scores: Scores, shape: tuple[int, ...]) -> str:
    """The deepest layer whose output map is at least ``MIN_SIDE`` pixels a side, else torchcam's choice (larger than 1 x 1)."""
    sides: list[tuple[str, int]] = []
    hooks = [
        module.register_forward_hook(lambda _, __, out, name=name: sides.append((name, min(out.shape[-2:]))) if isinstance(out, Tensor) and out.ndim == 4 else None)
        for name, module in scores.named_modules() if name
    ]  # fmt: skip
    try:
        with torch.no_grad():
            scores(torch.zeros(2, *shape, device=next(scores.parameters()).device))  # 2: batch statistics need two images
    finally:
        for hook in hooks:
            hook.remove()
    fine = [name for name, side in sides if side >= MIN_SIDE]
    layer = fine[-1] if fine else locate_candidate_layer(scores, shape)
    if layer is None:
        raise ValueError("no layer of the network outputs a spatial map larger than 1 x 1 at this image size")
    return layer


def grad_cams(scores: Scores, images: Tensor, classes: Sequence[int], shape: tuple[int, ...], batch_size: int = 64) -> Tensor:
    """(N, H, W) Grad-CAM maps in [0, 1] of uint8 ``images`` for ``classes``, upsampled to the image size."""
    layer = target_layer(scores, shape)
    maps, device = [], next(scores.parameters()).device
    with GradCAM(scores, target_layer=layer, input_shape=shape) as extractor:
        for start in range(0, len(images), batch_size):
            chunk = to_float(images[start : start + batch_size]).to(device).requires_grad_(True)
            cam = extractor(class_idx=list(classes[start : start + batch_size]), scores=scores(chunk))[0]
            maps.append(F.interpolate(cam[:, None], size=shape[-2:], mode="bilinear", align_corners=False)[:, 0].cpu())
    return torch.cat(maps).clamp_(0, 1)


def overlay(image: Tensor, cam: Tensor) -> Image.Image:
    """A (C, H, W) uint8 scan beside its Grad-CAM overlay (jet), each ``SIDE`` pixels tall."""
    array = image.permute(1, 2, 0).numpy()
    scan = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).convert("RGB").resize((SIDE, SIDE), Image.BILINEAR)
    mask = Image.fromarray(cam.detach().numpy().astype(np.float32), mode="F")
    return concat(scan, overlay_mask(scan, mask, colormap="jet", alpha=0.6))


def concat(left: Image.Image, right: Image.Image) -> Image.Image:
    both = Image.new("RGB", (left.width + right.width + 4, left.height), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 4, 0))
    return both


def captioned(image: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + 18), "white")
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((4, image.height + 3), text, fill="black")
    return out


def file_name(scan_file: str) -> str:
    """The overlay's path under the explain folder: the scan's path with '.cam.png' added (npz indices as _key_i)."""
    return scan_file.replace("[", "_").replace("]", "") + ".cam.png"


def contact_sheet(panels: list[tuple[Image.Image, str]], total: int, path: Path) -> Path:
    """A grid of overlays (right half of each panel) titled by file and prediction."""
    columns = min(8, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows), squeeze=False, layout="constrained")
    for ax, (panel, label) in zip(axes.flat, panels):
        ax.imshow(panel.crop((panel.width - SIDE, 0, panel.width, SIDE)))
        ax.set_title(label, fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    shown = f"first {len(panels)} of {total}" if total > len(panels) else f"{total}"
    fig.suptitle(f"Grad-CAM of the predicted class ({shown} scans; red: most evidence)", fontsize=9)
    return save_figure(fig, path)


def explain_scans(bundle: Bundle, scans: Sequence[Scan], probabilities: Tensor, folder: Path) -> dict[str, Any]:
    """Write a Grad-CAM overlay per read scan and a contact sheet to ``folder``; returns what was done, or why not."""
    scores = score_network(bundle)
    if isinstance(scores, str):
        return {"written": 0, "reason": scores}
    read = [scan for scan in scans if scan.image is not None]
    if not read:
        return {"written": 0, "reason": "no scan could be read"}
    predicted = probabilities.argmax(dim=1).tolist()
    try:
        cams = grad_cams(scores.eval(), torch.stack([scan.image for scan in read]), predicted, bundle.preprocessing.shape)
    except ValueError as error:
        return {"written": 0, "reason": str(error)}
    panels = []
    for scan, cam, label, probs in zip(read, cams, predicted, probabilities.tolist()):
        caption = f"{bundle.class_names[label]} ({probs[label]:.2f})"
        panel = overlay(scan.image, cam)
        image = captioned(panel, f"predicted: {caption}")
        write_atomic(folder / file_name(scan.file), lambda temporary, image=image: image.save(temporary, format="PNG"))
        if len(panels) < SHEET_LIMIT:
            panels.append((panel, f"{Path(scan.file).name[:22]}\n{caption}"))
    contact_sheet(panels, len(read), folder / "contact_sheet.png")
    return {"written": len(read), "folder": str(folder), "contact_sheet": str(folder / "contact_sheet.png"), "reason": ""}
