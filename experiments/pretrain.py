"""Self-supervised pretraining: ``python experiments/pretrain.py [overrides]`` (= ``medfew pretrain``).

The pool is the train split without labels (all images when there are no splits) minus a
small labelled monitor split, whose kNN accuracy is logged after every epoch. Writes the
exported backbone, checkpoints, knn.csv and the resolved config into the run folder
(outputs/pretrain/<data>-<ssl>-<backbone>-seed<seed>/); the same command resumes.
"""

from medfew.cli import pretrain

if __name__ == "__main__":
    pretrain()
