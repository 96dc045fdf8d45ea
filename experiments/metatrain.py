"""Meta-train one learner and score it on novel classes: ``python experiments/metatrain.py [overrides]``
(= ``medfew metatrain``).

    python experiments/metatrain.py learner=protonet            # PBC base -> novel classes
    python experiments/metatrain.py learner=maml learner.meta_train_steps=200
    python experiments/metatrain.py experiment=metatrain_crossdomain  # PBC + MRI -> chest X-ray

Checkpoints and metrics land in the run folder (outputs/metatrain/<data>-<learner>-seed<s>/);
running the same command again resumes meta-training. Prints and writes ``results.json``:
accuracy mean ± 95% CI over the novel-class episodes for every shot count.
"""

from medfew.cli import metatrain

if __name__ == "__main__":
    metatrain()
