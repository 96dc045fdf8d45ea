from medfew.evaluation.compare import compare
from medfew.evaluation.metrics import classification_metrics, confusion_matrix, per_class_accuracy
from medfew.evaluation.protocols import EpisodesProtocol, LabelBudgetProtocol, Protocol, Setting, Task
from medfew.evaluation.stats import mean_ci, paired_bootstrap, paired_comparison, wilcoxon_p

__all__ = [
    "EpisodesProtocol",
    "LabelBudgetProtocol",
    "Protocol",
    "Setting",
    "Task",
    "classification_metrics",
    "compare",
    "confusion_matrix",
    "mean_ci",
    "paired_bootstrap",
    "paired_comparison",
    "per_class_accuracy",
    "wilcoxon_p",
]
