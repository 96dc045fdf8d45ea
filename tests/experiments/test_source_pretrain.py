"""experiment=source_pretrain: SSL on the pooled images of other datasets, then a transfer learner of
another dataset starts from the export."""

from medfew import apps
from medfew.evaluation import compare
from medfew.evaluation.folds import load_data
from medfew.evaluation.results import ResultsFile


def test_a_source_backbone_pretrains_on_the_pool_and_transfers(shared_file, compose_root, tmp_path):
    for name in ("pbc_bloodcells_64.npz", "brain_tumor_mri_64.npz", "pneumoniamnist.npz", "breastmnist.npz"):
        shared_file(name)
    source = compose_root("pretrain", tmp_path / "source", ["experiment=source_pretrain", "debug=smoke", "max_images=64"])
    assert source.data.name == "medical_pool" and (source.data.image_size, source.data.channels) == (28, 1)
    export = apps.pretrain(source)
    pool_classes = {"basophil", "glioma", "pneumonia"}  # one of each source
    assert pool_classes <= set(load_data(source.data).class_names)

    overrides = [
        "experiment=breastmnist_label_efficiency", "debug=smoke", "learners=[transfer_logreg]",
        f"+learner_overrides.transfer_logreg.backbone.pretrained={export}", "report.reference=null",
    ]  # fmt: skip
    summary = compare(compose_root("config", tmp_path / "target", overrides))
    rows = ResultsFile(tmp_path / "target" / "results.csv").read()
    assert {row["learner"] for row in rows} == {"transfer_logreg"} and len(rows) == 3  # 3 label fractions
    assert all(0.0 <= float(row["bal_acc"]) <= 1.0 for row in rows)
    settings = (tmp_path / "target" / "config_resolved.yaml").read_text()
    assert str(export) in settings and summary
