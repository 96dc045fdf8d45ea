"""A hybrid end to end: SSL pretraining on the protocol's unlabeled pool, then prototypes."""

from pathlib import Path

from medfew.evaluation import compare


def test_ssl_prototype_pretrains_on_the_pool_then_scores(breastmnist, compose_root, tmp_path: Path):
    cfg = compose_root(
        "config",
        tmp_path,
        [
            "learners=[ssl_prototype]", "protocol.per_class=[5]", "protocol.fractions=[]", "seeds=[0]",
            "backbone.model_kwargs.hidden=16", "trainer.enable_progress_bar=false", "report.reference=null",
            "+learner_overrides.ssl_prototype.pretrain.epochs=1", "+learner_overrides.ssl_prototype.pretrain.batch_size=128",
        ],
    )  # fmt: skip
    summary = compare(cfg)
    (export,) = (tmp_path / "work").glob("ssl_prototype-*/per_class=5/seed0/ssl/backbone.safetensors")
    assert export.stat().st_size > 0
    assert 0 <= summary["results"]["bal_acc"]["ssl_prototype"]["per_class=5"]["mean"] <= 1
