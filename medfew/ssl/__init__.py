"""Self-supervised pretraining on unlabeled scans with lightly's heads and losses."""

from medfew.ssl.barlow_twins import BarlowTwins
from medfew.ssl.base import MomentumMethod, Recipe, SSLMethod, ViewSpec
from medfew.ssl.byol import BYOL
from medfew.ssl.dino import DINO
from medfew.ssl.moco import MoCo
from medfew.ssl.module import SSLModule
from medfew.ssl.monitor import KnnMonitor, embedding_std, knn_accuracy, pool_and_monitor
from medfew.ssl.pretrain import EXPORT_NAME, METHODS, build_method, pretrain
from medfew.ssl.simclr import SimCLR
from medfew.ssl.simsiam import SimSiam
from medfew.ssl.vicreg import VICReg
from medfew.ssl.views import Views, build_augment

__all__ = [
    "BYOL",
    "DINO",
    "EXPORT_NAME",
    "METHODS",
    "BarlowTwins",
    "KnnMonitor",
    "MoCo",
    "MomentumMethod",
    "Recipe",
    "SSLMethod",
    "SSLModule",
    "SimCLR",
    "SimSiam",
    "VICReg",
    "ViewSpec",
    "Views",
    "build_augment",
    "build_method",
    "embedding_std",
    "knn_accuracy",
    "pool_and_monitor",
    "pretrain",
]
