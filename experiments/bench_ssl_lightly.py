"""lightly's own training loop and views, on the pool, monitor and network of bench_ssl_quality.py.

    python experiments/bench_ssl_lightly.py [--methods byol,simsiam,simclr] [--long] [--threads 1]

Is a method's result here a fact about the data or about medfew's recipe? This script trains
each method the way lightly's examples and CIFAR-10 benchmark do, written out in plain torch:
lightly's view transform for the method (PIL, image by image), lightly's heads, SGD at 0.06 per
128 images (momentum 0.9, weight decay 5e-4, cosine over the steps, no warmup), BYOL's teacher
momentum from 0.99 to 1 on a cosine. Changed from lightly: 90-degree rotations and vertical flips
(a blood smear has no up), no Gaussian blur at 28 px (as lightly's CIFAR-10 benchmark), no
normalisation in the transform (medfew's backbone normalises). The network and its
initialisation, the pool, the kNN monitor and the budget are bench_ssl_quality.py's (and so are the lines
and files it writes: <out>/<method>/knn.csv, <out>/results.csv), so a line here
and that script's line for the same method differ only in loop, views, heads and optimiser.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from bench_ssl_quality import measure, method_line, parser, start, summarise, write_csv
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import BYOLTransform, SimCLRTransform, SimSiamTransform
from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform
from lightly.utils.scheduler import cosine_schedule
from PIL import Image
from torch import Tensor, nn

from medfew.data import ImageData
from medfew.seeding import seeded_generator

METHODS = ("byol", "simsiam", "simclr")
LR_PER_128 = 0.06


def transform(method: str, image_size: int):
    """lightly's two-view transform of ``method``, with rotations and vertical flips, no blur, no normalisation."""
    kwargs = {"input_size": image_size, "gaussian_blur": 0.0, "normalize": None, "vf_prob": 0.5, "rr_prob": 0.5}
    if method == "byol":
        return BYOLTransform(BYOLView1Transform(**kwargs), BYOLView2Transform(**kwargs))
    return (SimSiamTransform if method == "simsiam" else SimCLRTransform)(**kwargs)


class LightlyExample(nn.Module):
    """The model of lightly's example for ``method``: backbone, heads, loss of a pair of views."""

    def __init__(self, method: str, backbone: nn.Module) -> None:
        super().__init__()
        self.method, self.backbone, width = method, backbone, backbone.num_features
        if method == "byol":
            self.projector, self.predictor = BYOLProjectionHead(width, 1024, 256), BYOLPredictionHead(256, 1024, 256)
            self.teacher = nn.Sequential(copy.deepcopy(backbone), copy.deepcopy(self.projector))
            deactivate_requires_grad(self.teacher)
        elif method == "simsiam":
            self.projector, self.predictor = SimSiamProjectionHead(width, 512, 128), SimSiamPredictionHead(128, 64, 128)
        else:
            self.projector, self.predictor = SimCLRProjectionHead(width, 512, 128), nn.Identity()
        self.criterion = NTXentLoss() if method == "simclr" else NegativeCosineSimilarity()

    def forward(self, x0: Tensor, x1: Tensor, step: int, steps: int) -> Tensor:
        z0, z1 = self.projector(self.backbone(x0)), self.projector(self.backbone(x1))
        if self.method == "simclr":
            return self.criterion(z0, z1)
        if self.method == "byol":
            momentum = cosine_schedule(step, steps, 0.99, 1.0)
            update_momentum(self.backbone, self.teacher[0], momentum)
            update_momentum(self.projector, self.teacher[1], momentum)
            with torch.no_grad():
                z0, z1 = self.teacher(x0), self.teacher(x1)
        p0, p1 = self.predictor(z0), self.predictor(z1)
        return 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))


def train(method: str, encoder: nn.Module, pool: ImageData, monitor: ImageData, args: argparse.Namespace, k: int) -> list[dict]:
    """Train a copy of ``encoder`` with lightly's loop; kNN rows (step, knn_acc, embedding_std) every 100 steps."""
    model = LightlyExample(method, copy.deepcopy(encoder))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR_PER_128 * args.batch_size / 128, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    if len(pool) < args.batch_size:
        raise SystemExit(f"the pool holds {len(pool)} images, fewer than one batch of {args.batch_size}")
    views = transform(method, pool.images.shape[-1])
    images = [Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()) for image in pool.images]
    generator = seeded_generator(args.seed)
    rows = [dict(zip(("step", "knn_acc", "embedding_std"), (0, *measure(model.backbone, monitor, k))))]
    step = 0
    while step < args.steps:
        for batch in torch.randperm(len(images), generator=generator).split(args.batch_size):
            if len(batch) < args.batch_size or step == args.steps:
                break
            pairs = [views(images[i]) for i in batch.tolist()]
            x0, x1 = (torch.stack(view) for view in zip(*pairs))
            model.train()
            loss = model(x0, x1, step, args.steps)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step % 100 == 0 or step == args.steps:
                rows.append(dict(zip(("step", "knn_acc", "embedding_std"), (step, *measure(model.backbone, monitor, k)))))
    return rows


def main() -> None:
    args = parser(__doc__, METHODS).parse_args()
    cfg, labelled_pool, monitor, encoder = start(args, METHODS, "bench_ssl_lightly")
    pool, summaries = labelled_pool.unlabeled(), []
    for method in args.methods:
        begin = time.perf_counter()
        rows = train(method, encoder, pool, monitor, args, cfg.ssl.knn_k)
        write_csv(Path(args.out) / method / "knn.csv", rows)
        summaries.append(summarise(method, rows, time.perf_counter() - begin))
        print(method_line(f"{method} (lightly)", summaries[-1]), flush=True)
    write_csv(Path(args.out) / "results.csv", summaries)

if __name__ == "__main__":
    main()
