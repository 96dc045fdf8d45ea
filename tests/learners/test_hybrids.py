"""Hybrids by config only: SSL pretraining (medfew.ssl.pretrain) feeding a feature learner or a meta-learner."""

from hydra import compose, initialize_config_dir

from medfew.learners.registry import CONFIG_DIR, with_learner

HYBRIDS = {
    "ssl_prototype": "prototype", "ssl_finetune": "finetune", "ssl_linear_probe": "linear_probe", "ssl_logreg": "logreg",
    "ssl_protonet": "protonet", "pmf": "finetune",
}  # fmt: skip


def test_hybrid_configs_are_their_learner_plus_a_pretrain_partial():
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        root = compose("config")
        for hybrid, plain in HYBRIDS.items():
            learner = with_learner(root, hybrid).learner
            assert learner._target_ == with_learner(root, plain).learner._target_
            assert learner.pretrain._target_ == "medfew.ssl.pretrain" and learner.pretrain._partial_
