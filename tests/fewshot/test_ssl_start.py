"""Meta-learners start from an SSL backbone inside the protocol: ``pretrain`` runs in ``prepare``
before meta-training (``ssl_protonet``; the MAML family splits the export again)."""

from functools import partial
from pathlib import Path

import torch

from medfew.data import ImageData
from medfew.fewshot import ProtoNet
from medfew.fewshot.anil import ANIL
from medfew.fewshot.maml import MAML
from medfew.learners import PrepareContext
from medfew.models import create_backbone, save_backbone

conv4 = partial(create_backbone, "conv4", 1, 16, model_kwargs={"hidden": 8})


def export_of(seed: int, tmp_path: Path):
    torch.manual_seed(seed)
    backbone = conv4()
    path = save_backbone(backbone, tmp_path / f"export{seed}.safetensors")
    return backbone.net.state_dict(), lambda unlabeled, workdir, seed, cache=None, monitor=None: path


def prepare(learner, tmp_path: Path) -> None:
    pool = ImageData(torch.zeros(4, 1, 16, 16, dtype=torch.uint8), torch.full((4,), -1), ("a",))
    learner.prepare(PrepareContext(tmp_path, unlabeled=pool))


def test_protonet_uses_the_ssl_export(tmp_path: Path):
    weights, pretrain = export_of(7, tmp_path)
    learner = ProtoNet(conv4, pretrain=pretrain)
    prepare(learner, tmp_path)
    for key, value in learner.backbone.net.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_maml_and_anil_split_the_ssl_export_and_keep_their_checkpoint_keys(tmp_path: Path):
    weights, pretrain = export_of(7, tmp_path)
    for learner_class, network in ((MAML, lambda l: l.adaptive.module[0]), (ANIL, lambda l: l.body)):
        torch.manual_seed(0)
        learner = learner_class(conv4, n_way=3, pretrain=pretrain)
        keys = list(learner.state_dict())
        prepare(learner, tmp_path)
        assert list(learner.state_dict()) == keys and learner.backbone is None
        for key, value in network(learner).net.state_dict().items():
            assert torch.equal(value, weights[key]), (learner_class.__name__, key)
