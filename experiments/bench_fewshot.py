"""Meta-learning speed: medfew against learn2learn's own recipes, on 64 px PBC blood cells.

    python experiments/bench_fewshot.py [--iterations 8] [--episodes 1000]

(1) Seconds per MAML meta-iteration (5-way 1-shot with 1 query per class, meta-batch 4,
    Conv-4, one second-order inner step of lr 0.5, as in learn2learn's vision examples): medfew's
    meta-training (Lightning, ``medfew.fewshot.maml.MAML``) against a bare loop written as
    in learn2learn's ``examples/vision/maml_miniimagenet.py``; same network, same initial
    weights, same episodes. Goal: medfew adds at most 10%.
(2) Episodes per second: medfew's ``EpisodeSampler`` (one gather from the in-memory uint8
    tensor) against a learn2learn ``TaskDataset`` (MetaDataset + NWays, KShots, LoadData,
    RemapLabels) over a per-image Dataset that decodes a PNG with PIL and applies
    ``ToTensor`` to each image. Goal: >= 10x.
(3) Seconds per fine-tuning episode (``medfew.learners.finetune.FineTune``, 3-way 10-shot, 100
    steps, Conv-4, precision auto): convolution weights in NHWC (``channels_last``, the default)
    against NCHW; same episode, same initial weights. Goal: >= 1.3x.
Runs on CUDA when present, else CPU (about 1 minute on 2 idle cores; on a crowded machine
``OMP_NUM_THREADS=1`` keeps torch's thread pool from stalling).
"""

from __future__ import annotations

import argparse
import copy
import io
import random
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import learn2learn as l2l
import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset
from torchvision import transforms

from medfew.data import EpisodeSampler, ImageData, load_labelled_npz, to_float
from medfew.fewshot import MetaTraining, meta_train
from medfew.fewshot.maml import MAML
from medfew.fewshot.meta_training import EpisodeBatches
from medfew.learners import PrepareContext
from medfew.learners.finetune import FineTune
from medfew.models import create_backbone
from medfew.seeding import derive_seed

WAYS, SHOTS, QUERIES, META_BATCH, INNER_LR, SEED = 5, 1, 1, 4, 0.5, 0  # queries = shots, as in learn2learn's examples


class IterationTimes(pl.Callback):
    """Wall time between consecutive ends of training batches (one meta-iteration each)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


def medfew_seconds(learner: MAML, data: ImageData, iterations: int, accelerator: str) -> list[float]:
    timer = IterationTimes()
    recipe = MetaTraining(
        n_way=WAYS, n_shot=SHOTS, n_query=QUERIES, meta_batch_size=META_BATCH, steps_per_epoch=iterations + 1,
        trainer={"accelerator": accelerator, "callbacks": [timer], "enable_progress_bar": True},
    )
    with tempfile.TemporaryDirectory() as workdir:
        meta_train(learner, PrepareContext(Path(workdir), seed=SEED, base=data), recipe, steps=iterations + 1)
    return np.diff(timer.ends).tolist()  # the first iteration (warm-up) is dropped


def bare_l2l_seconds(network: nn.Module, sampler: EpisodeSampler, iterations: int, device: torch.device) -> list[float]:
    """learn2learn's vision-example loop over the episodes medfew's first epoch draws."""
    torch.manual_seed(derive_seed(SEED, 0))  # what medfew.training.EpochSeed sets at epoch 0
    episodes = iter(EpisodeBatches(sampler, META_BATCH, iterations + 1))
    maml = l2l.algorithms.MAML(network.to(device), lr=INNER_LR, first_order=False)
    opt = torch.optim.Adam(maml.parameters(), 1e-3)
    loss = nn.CrossEntropyLoss(reduction="mean")
    ends = []
    for _ in range(iterations + 1):
        opt.zero_grad()
        meta_train_error = meta_train_accuracy = 0.0
        for episode in next(episodes):
            learner = maml.clone()
            train_error = loss(learner(episode.support), episode.support_labels)
            learner.adapt(train_error)
            predictions = learner(episode.query)
            evaluation_error = loss(predictions, episode.query_labels)
            evaluation_error.backward()
            meta_train_error += evaluation_error.item()
            meta_train_accuracy += (predictions.argmax(dim=1) == episode.query_labels).float().mean().item()
        for p in maml.parameters():
            p.grad.data.mul_(1.0 / META_BATCH)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ends.append(time.perf_counter())
    return np.diff(ends).tolist()


class PNGImages(Dataset):
    """The usual per-image Dataset: PNG bytes in memory, decoded by PIL and transformed per item."""

    def __init__(self, data: ImageData) -> None:
        self.png = []
        for image in data.images.permute(0, 2, 3, 1).numpy():
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            self.png.append(buffer.getvalue())
        self.labels = data.labels.tolist()
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.png)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.open(io.BytesIO(self.png[i])).convert("RGB")), self.labels[i]


def l2l_episodes_per_second(data: ImageData, n_episodes: int) -> float:
    dataset = PNGImages(data)
    labels_to_indices = {c: [i for i, y in enumerate(dataset.labels) if y == c] for c in set(dataset.labels)}
    meta = l2l.data.MetaDataset(dataset, labels_to_indices=labels_to_indices)
    tasks = l2l.data.TaskDataset(
        meta,
        task_transforms=[
            l2l.data.transforms.NWays(meta, WAYS),
            l2l.data.transforms.KShots(meta, SHOTS + QUERIES),
            l2l.data.transforms.LoadData(meta),
            l2l.data.transforms.RemapLabels(meta),
        ],
        num_tasks=-1,
    )
    random.seed(SEED)
    tasks.sample()
    start = time.perf_counter()
    for _ in range(n_episodes):
        tasks.sample()
    return n_episodes / (time.perf_counter() - start)


def medfew_episodes_per_second(data: ImageData, n_episodes: int, device: str | None) -> float:
    sampler = EpisodeSampler(data, WAYS, SHOTS, QUERIES, device=device)
    episodes = sampler.episodes(SEED)
    next(episodes)
    start = time.perf_counter()
    for _ in range(n_episodes):
        episode = next(episodes)
    if episode.support.is_cuda:
        torch.cuda.synchronize()
    return n_episodes / (time.perf_counter() - start)


def finetune_seconds(data: ImageData, channels_last: bool, steps: int, device: torch.device) -> float:
    """Wall time of one FineTune.adapt on the first 10 images of each of 3 classes."""
    support = to_float(torch.cat([data.images[data.labels == c][:10] for c in range(3)]).to(device))
    labels = torch.arange(3, device=device).repeat_interleave(10)
    torch.manual_seed(SEED)
    learner = FineTune(partial(create_backbone, "conv4", 3, 64), steps=steps, channels_last=channels_last).to(device)
    start = time.perf_counter()
    learner.adapt(support, labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=8, help="timed MAML meta-iterations per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both loops (evens out load drift)")
    parser.add_argument("--episodes", type=int, default=300, help="episodes drawn by the learn2learn TaskDataset")
    parser.add_argument("--finetune-steps", type=int, default=100, help="steps of each timed fine-tuning episode")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    data = load_labelled_npz("pbc_bloodcells_64.npz")
    print(f"{data.name}: {len(data)} images {tuple(data.images.shape[1:])}, {data.n_classes} classes; device {device}")

    torch.manual_seed(SEED)
    backbone = create_backbone("conv4", in_chans=3, image_size=64, model_kwargs={"hidden": 64})
    learner = MAML(backbone, n_way=WAYS, inner_lr=INNER_LR, inner_steps=1)
    network = copy.deepcopy(learner.adaptive.module)  # the same Conv-4 + head, same weights
    sampler = EpisodeSampler(data, WAYS, SHOTS, QUERIES, device=device)
    bare_times, ours_times = [], []
    for _ in range(args.rounds):
        bare_times += bare_l2l_seconds(copy.deepcopy(network), sampler, args.iterations, device)
        ours_times += medfew_seconds(learner, data, args.iterations, "gpu" if cuda else "cpu")
    bare, ours = statistics.median(bare_times), statistics.median(ours_times)
    print(f"(1) MAML meta-iteration ({WAYS}-way {SHOTS}-shot {QUERIES}-query, meta-batch {META_BATCH}, Conv-4, 64 px):")
    print(f"    median of {len(bare_times)} iterations each: bare learn2learn loop {bare:.3f} s | medfew {ours:.3f} s | "
          f"medfew / bare = {ours / bare:.3f} (overhead {100 * (ours / bare - 1):+.1f}%, goal <= +10%)")

    l2l_rate = l2l_episodes_per_second(data, args.episodes)
    ours_rate = medfew_episodes_per_second(data, 10 * args.episodes, None)
    print(f"(2) episodes/s ({WAYS}-way {SHOTS}-shot {QUERIES}-query): learn2learn TaskDataset over PNG+PIL+ToTensor "
          f"{l2l_rate:.0f} | medfew EpisodeSampler (CPU) {ours_rate:.0f} | ratio {ours_rate / l2l_rate:.1f}x (goal >= 10x)")
    if cuda:
        gpu_rate = medfew_episodes_per_second(data, 10 * args.episodes, "cuda")
        print(f"    medfew EpisodeSampler on CUDA {gpu_rate:.0f} episodes/s | ratio {gpu_rate / l2l_rate:.1f}x")

    times = {layout: [] for layout in (False, True)}
    for _ in range(args.rounds):
        for layout in times:
            times[layout].append(finetune_seconds(data, layout, args.finetune_steps, device))
    nchw, nhwc = statistics.median(times[False]), statistics.median(times[True])
    print(f"(3) fine-tuning episode (3-way 10-shot, {args.finetune_steps} steps, Conv-4, 64 px), median of {args.rounds}: "
          f"NCHW {nchw:.2f} s | channels_last {nhwc:.2f} s | ratio {nchw / nhwc:.2f}x (goal >= 1.3x)")


if __name__ == "__main__":
    main()
