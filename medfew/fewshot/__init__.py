"""Meta-learning on the few labelled classes: the episodic meta-training engine (``MetaTraining``,
``meta_train``: the meta-training stage of every ``medfew.learners.backbone.BackboneLearner``) and the
meta-learners whose per-task rule is what it trains (Prototypical Networks, Matching Networks, the MAML family).

The MAML family imports learn2learn, so it is imported lazily (``medfew.fewshot.maml``).
"""

from medfew.fewshot.episodic import EpisodicLearner
from medfew.fewshot.meta_training import MetaTraining, meta_train
from medfew.fewshot.protonet import ProtoNet

__all__ = ["EpisodicLearner", "MetaTraining", "ProtoNet", "meta_train"]
