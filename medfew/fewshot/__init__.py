"""Meta-learning on the few labelled classes: Prototypical Networks and the MAML family.

The MAML family imports learn2learn, so it is imported lazily (``medfew.fewshot.maml``).
"""

from medfew.fewshot.episodic import EpisodicLearner
from medfew.fewshot.meta_training import MetaTraining, meta_train
from medfew.fewshot.protonet import ProtoNet

__all__ = ["EpisodicLearner", "MetaTraining", "ProtoNet", "meta_train"]
