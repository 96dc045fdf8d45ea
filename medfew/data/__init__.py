from medfew.data.augment import medical_augment
from medfew.data.audit import DuplicateReport, audit_duplicates, duplicate_indices
from medfew.data.dataset import UNLABELED, ImageData, concat
from medfew.data.dicom import load_dicom_folder
from medfew.data.episodes import Episode, EpisodeIndices, EpisodeSampler, EpisodeSet, to_float
from medfew.data.folder import load_image_folder
from medfew.data.medmnist import load_medmnist
from medfew.data.npz import load_labelled_npz
from medfew.data.preprocess import preprocess
from medfew.data.root import data_root
from medfew.data.splits import ClassSplit, DataSplit, LabelBudget, class_split, label_budget, make_splits

__all__ = [
    "UNLABELED",
    "ClassSplit",
    "DataSplit",
    "DuplicateReport",
    "Episode",
    "EpisodeIndices",
    "EpisodeSampler",
    "EpisodeSet",
    "ImageData",
    "LabelBudget",
    "audit_duplicates",
    "class_split",
    "concat",
    "data_root",
    "duplicate_indices",
    "label_budget",
    "load_dicom_folder",
    "load_image_folder",
    "load_labelled_npz",
    "load_medmnist",
    "make_splits",
    "medical_augment",
    "preprocess",
    "to_float",
]
