"""Same config and seed -> identical numbers on CPU, bit for bit: SSL pretraining (augmentation
included), meta-training and a comparison with a trained learner. (Resumed-equals-uninterrupted
runs in test_kill_resume_*.py compare independent processes too.)"""

import csv
import functools

import torch
from safetensors.torch import load_file

from medfew.data import medical_augment
from medfew.evaluation import compare
from medfew.fewshot import MetaTraining, ProtoNet
from medfew.learners import PrepareContext
from medfew.ssl import METHODS, pretrain

QUIET = dict(accelerator="cpu", enable_progress_bar=False, log_every_n_steps=1)


def test_ssl_pretraining_is_deterministic(pbc_pool, tiny_conv4, tmp_path):
    method = functools.partial(METHODS["dino"], hidden_dim=32, bottleneck_dim=16, output_dim=64, n_local=2)
    exports = [
        pretrain(pbc_pool, tmp_path / run, 5, method=method, backbone=tiny_conv4, epochs=2, batch_size=8, trainer=QUIET)
        for run in ("a", "b")
    ]
    a, b = (load_file(path) for path in exports)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.equal(a["features.0.0.weight"], tiny_conv4().net.state_dict()["features.0.0.weight"])


def test_meta_training_is_deterministic(pbc_split, tiny_conv4, tmp_path):
    recipe = MetaTraining(
        n_way=3, n_shot=1, n_query=2, meta_batch_size=2, steps_per_epoch=1, val_episodes=2,
        augment=medical_augment(32, rotation=90.0), trainer=QUIET,
    )  # fmt: skip
    states = []
    for run in ("a", "b"):
        torch.manual_seed(0)
        learner = ProtoNet(tiny_conv4, meta_train_steps=2, meta_training=recipe)
        learner.prepare(PrepareContext(tmp_path / run, seed=1, base=pbc_split["base"], val=pbc_split["val"]))
        states.append(learner.state_dict())
    assert all(torch.equal(value, states[1][key]) for key, value in states[0].items())


def test_comparison_is_deterministic(breastmnist, compose_root, tmp_path):
    overrides = [
        "learners=[finetune,logreg_pixels]", "seeds=[3]", "protocol.per_class=[5]", "protocol.fractions=[]",
        "+learner_overrides.finetune.steps=4", "+learner_overrides.finetune.eval_every=2", "report.reference=logreg_pixels",
        "report.n_resamples=100",
    ]  # fmt: skip
    rows = []
    for run in ("a", "b"):
        compare(compose_root("config", tmp_path / run, overrides))
        with (tmp_path / run / "results.csv").open(newline="") as f:
            rows.append([{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)])
    assert len(rows[0]) == 2 and rows[0] == rows[1]
