"""protocol.unlabeled_pool=all on a user's folder with k-fold: one SSL pretraining per seed serves every fold,
and summary.md says the run is transductive."""

import csv
import json

from medfew.evaluation import compare


def test_every_fold_shares_one_pretraining_on_all_images(pbc_png_folder, compose_root, tmp_path):
    overrides = [
        "data=image_folder", f"data.source.path={pbc_png_folder}", "data.channels=3", "data.image_size=16", "data.split=kfold",
        "data.folds=3", "protocol.fractions=[1.0]", "protocol.unlabeled_pool=all", "seeds=[0]", "learners=[ssl_prototype]",
        "backbone=conv4", "+learner_overrides.ssl_prototype.pretrain={steps: 2, epochs: null, batch_size: 8}",
        "report.reference=ssl_prototype", "report.n_resamples=200", "leakage.check=off",
    ]  # fmt: skip
    compare(compose_root("config", tmp_path, overrides))
    with (tmp_path / "results.csv").open() as f:
        assert sorted(row["fold"] for row in csv.DictReader(f)) == [f"repeat0-fold{k}" for k in range(3)]
    (run,) = (tmp_path / "cache" / "ssl").iterdir()  # one pretraining for the three folds
    assert json.loads((run / "pretrain.json").read_text())["n_images"] == 60  # every image, test ones included
    assert "- transductive: SSL pretrained on every image, test images included, without their labels" in (tmp_path / "summary.md").read_text()
