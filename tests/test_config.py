"""Budget knobs reach every learner setting they name; a misspelt override is an error with close names."""

import pytest
from omegaconf import OmegaConf

from medfew.config import apply_knobs, check_keys
from medfew.evaluation import compare
from medfew.learners.registry import with_learner


def test_knobs_set_every_set_leaf_they_name_longest_suffix_first():
    node = OmegaConf.create(
        {
            "steps": 300,
            "lr": 0.1,
            "pretrain": {"epochs": 100, "steps": None, "batch_size": 256},
            "meta_training": {"steps_per_epoch": 100, "n_query": 15},
            "backbone": "${oc.env:HOME}",  # an interpolation is a leaf: never walked into
        }
    )
    used = apply_knobs(node, {"steps": 2, "pretrain.steps": 7, "epochs": 1, "steps_per_epoch": None, "backbone.x": 3})
    assert node.steps == 2 and node.pretrain.epochs == 1
    assert node.pretrain.steps is None  # a budget in epochs stays in epochs: a null setting is off
    assert node.meta_training.steps_per_epoch == 100  # a null knob keeps the learner's own
    assert node.lr == 0.1 and node.pretrain.batch_size == 256
    assert used == {"steps", "epochs"}


def test_nested_knobs_from_the_command_line_are_dotted_names():
    node = OmegaConf.create({"steps": 300, "pretrain": {"steps": 1000, "epochs": None}})
    assert apply_knobs(node, {"pretrain": {"steps": 3}}) == {"pretrain.steps"}
    assert node.pretrain.steps == 3 and node.steps == 300
    with pytest.raises(ValueError, match=r"knobs.pretrain.steps is given twice, as 32 and 3"):
        apply_knobs(node, {"pretrain.steps": 32, "pretrain": {"steps": 3}})


def test_unknown_keys_name_the_path_and_close_names():
    base = OmegaConf.create({"steps": 1, "pretrain": {"epochs": 1}, "backbone": None})
    check_keys(base, {"steps": 5, "pretrain": {"epochs": 2}, "backbone": {"anything": 1}}, "learner_overrides.x")
    with pytest.raises(KeyError, match=r"learner_overrides.x.stpes is not a setting; did you mean 'steps'\?"):
        check_keys(base, {"stpes": 5}, "learner_overrides.x")
    with pytest.raises(KeyError, match=r"learner_overrides.x.pretrain.epoch is not a setting; did you mean 'epochs'"):
        check_keys(base, {"pretrain": {"epoch": 2}}, "learner_overrides.x")


@pytest.mark.parametrize(
    "override, message",
    [
        ("+learner_overrides.finetun.steps=50", r"learner_overrides.finetun: unknown learner 'finetun' \(did you mean 'finetune'\?\)"),
        ("+learner_overrides.finetune.step=50", r"learner_overrides.finetune.step is not a setting; did you mean 'steps'"),
    ],
)
def test_a_misspelt_learner_override_stops_the_run(override, message, compose_root, tmp_path):
    with pytest.raises(KeyError, match=message):
        compare(compose_root("config", tmp_path, [override]))
    assert not (tmp_path / "results.csv").exists()


def test_smoke_shrinks_every_learner_by_its_setting_names(compose_root, tmp_path):
    cfg = compose_root("config", tmp_path, ["experiment=bloodcells_fewshot", "debug=smoke"])
    for name in cfg.learners:
        learner = with_learner(cfg, name, cfg.learner_overrides.get(name)).learner
        apply_knobs(learner, cfg.knobs)
        if "steps" in learner:
            assert learner.steps == 2, name
        if "meta_train_steps" in learner:
            assert (learner.meta_train_steps, learner.meta_training.steps_per_epoch) == (1, 1), name
        if learner.get("pretrain"):
            assert (learner.pretrain.steps, learner.pretrain.epochs) == (2, 1), name  # 1 epoch, at most 2 steps
    assert cfg.smoke and cfg.protocol.n_episodes == 2


def test_smoke_keeps_an_epoch_budget_in_epochs(compose_root, tmp_path):
    overrides = ["debug=smoke", "+learner_overrides.ssl_finetune.pretrain={steps: null, epochs: 50}"]
    cfg = compose_root("config", tmp_path, overrides)
    learner = with_learner(cfg, "ssl_finetune", cfg.learner_overrides.ssl_finetune).learner
    apply_knobs(learner, cfg.knobs)
    assert (learner.pretrain.steps, learner.pretrain.epochs, learner.steps) == (None, 1, 2)


@pytest.mark.parametrize(
    "budget, knob, path",
    [
        ("debug=smoke", "knobs.meta_training.steps_per_epoch=5", "meta_training.steps_per_epoch"),
        ("budget=cpu", "knobs.pretrain.steps=1000", "pretrain.steps"),
    ],
)
def test_every_knob_of_a_budget_can_be_changed_on_the_command_line(compose_root, tmp_path, budget, knob, path):
    cfg = compose_root("config", tmp_path, [budget, knob])
    learner = with_learner(cfg, "pmf").learner
    apply_knobs(learner, cfg.knobs)
    assert OmegaConf.select(learner, path) == int(knob.split("=")[1])
