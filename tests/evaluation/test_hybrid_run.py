"""Hybrids end to end: SSL pretraining on the protocol's unlabeled pool, shared by every learner
and label budget that asks for the same one, then prototypes / logistic regression."""

from pathlib import Path

from medfew.evaluation import compare

HYBRIDS = ("ssl_prototype", "ssl_logreg")


def means(summary: dict) -> dict:
    """Mean balanced accuracy per learner and setting (one seed: the intervals are NaN)."""
    return {lr: {s: c["mean"] for s, c in cells.items()} for lr, cells in summary["results"]["bal_acc"].items()}


def test_ssl_learners_share_one_pretraining_then_score(breastmnist, compose_root, tmp_path: Path):
    overrides = [
        f"learners=[{','.join(HYBRIDS)}]", "protocol.per_class=[2,5]", "protocol.fractions=[]", "seeds=[0]",
        "backbone.model_kwargs.hidden=16", "trainer.enable_progress_bar=false", "report.reference=null",
        *(f"+learner_overrides.{name}.pretrain.{key}" for name in HYBRIDS for key in ("steps=1", "batch_size=128")),
    ]  # fmt: skip
    summary = compare(compose_root("config", tmp_path, overrides))
    # 2 learners x 2 label budgets prepare on the same pool (the whole train split) with the same seed
    (run,) = (tmp_path / "cache" / "ssl").iterdir()
    assert [p.name for p in (run / "logs").iterdir()] == ["version_0"]  # trained once
    assert (run / "backbone.safetensors").stat().st_size > 0 and not list((tmp_path / "work").rglob("ssl"))
    for name in HYBRIDS:
        for setting in ("per_class=2", "per_class=5"):
            assert 0 <= summary["results"]["bal_acc"][name][setting]["mean"] <= 1

    (tmp_path / "results.csv").unlink()  # a rerun from scratch reuses the finished pretraining
    compare(compose_root("config", tmp_path, overrides))
    assert [p.name for p in (run / "logs").iterdir()] == ["version_0"]
    assert list((tmp_path / "cache" / "ssl").iterdir()) == [run]

    other = compare(compose_root("config", tmp_path / "other", [*overrides, f"paths.cache_dir={tmp_path / 'cache'}"]))
    assert [p.name for p in (run / "logs").iterdir()] == ["version_0"]  # another run naming the cache reuses it
    assert not (tmp_path / "other" / "cache").exists()
    assert means(other) == means(summary)
