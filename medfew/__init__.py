"""medfew: few-label medical image classification.

Self-supervised pretraining (`medfew.ssl`), meta-learning (`medfew.fewshot`) and one
evaluation protocol (`medfew.evaluation`) over small in-memory medical datasets.
"""

__version__ = "0.1.0"
