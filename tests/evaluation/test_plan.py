"""The plan of a run: its tasks, its stages (SSL runs counted once however many learners, settings or folds share
them), their time from measured rates; a time limit that scales the budgets in order, down to floors, or refuses."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from medfew.evaluation.compare import compare, count_plan, learner_configs
from medfew.evaluation.costs import Rate
from medfew.evaluation.folds import load_data, make_folds
from medfew.evaluation.plan import LearnerPlan, Plan, Stage, alone, apply_scaling, fit_to_limit, scaling, what_fits
from medfew.evaluation.results import ResultsFile

SSL = "{steps: 7, epochs: null, batch_size: 8}"
RATES = {
    "ssl_linear_probe": {"ssl": Rate(0.5, 2.0), "tasks fraction=0.5": Rate(0.01, 0.5), "tasks fraction=1": Rate(0.02, 1.0)},
    "ssl_prototype": {"ssl": Rate(0.5, 2.0), "tasks fraction=0.5": Rate(0.0, 0.1), "tasks fraction=1": Rate(0.0, 0.2)},
}


def planned(compose_root, folder, out, *extra):
    """The plan of two SSL learners on ``folder`` (3 folds, 2 seeds, 2 label fractions) from the hand-made ``RATES``."""
    overrides = [
        "data=image_folder", f"data.source.path={folder}", "data.channels=3", "data.image_size=16", "data.split=kfold",
        "data.folds=3", "protocol.fractions=[0.5,1.0]", "seeds=[0,1]", "learners=[ssl_linear_probe,ssl_prototype]",
        "backbone=conv4", f"+learner_overrides.ssl_linear_probe.pretrain={SSL}", f"+learner_overrides.ssl_prototype.pretrain={SSL}",
        "leakage.check=off", *extra,
    ]  # fmt: skip
    cfg = compose_root("config", out, overrides)
    learners = learner_configs(cfg)
    folds, _ = make_folds(cfg, load_data(cfg.data))
    return cfg, folds, learners, count_plan(cfg, folds, learners, ResultsFile(out / "results.csv"), RATES)


def test_the_plan_counts_tasks_and_each_ssl_run_once(pbc_png_folder, compose_root, tmp_path):
    cfg, folds, learners, plan = planned(compose_root, pbc_png_folder, tmp_path)
    probe, prototype = plan.learners
    assert probe.tasks == prototype.tasks == 3 * 2 * 2 and probe.scored == 0
    ssl, *tasks = probe.stages
    # a train pool is the same for every fraction: 3 folds x 2 seeds runs, each 7 steps (the cap; 1 epoch would be more)
    assert ssl.steps == (7,) * 6 and ssl.note == "6 reused by its other settings or folds"
    assert ssl.seconds == pytest.approx(6 * (7 * 0.5 + 2.0))
    assert [t.steps for t in tasks] == [(100,) * 6, (100,) * 6]  # linear probe: 100 head steps per task
    assert probe.seconds == pytest.approx(33 + 6 * (100 * 0.01 + 0.5) + 6 * (100 * 0.02 + 1.0))
    assert prototype.stages[0].steps == () and prototype.stages[0].note == "12 shared with ssl_linear_probe"
    assert prototype.seconds == pytest.approx(6 * 0.1 + 6 * 0.2) and plan.seconds == pytest.approx(probe.seconds + prototype.seconds)
    assert "ssl_linear_probe: 12 tasks, about 60 s" in "\n".join(plan.lines())

    # a pretraining already in the cache costs nothing
    context = folds[1].protocol.context(folds[1].protocol.settings()[0], 1, tmp_path)
    pretrain = instantiate(learners["ssl_linear_probe"].learner.pretrain)
    export = pretrain(context.unlabeled, tmp_path, 1, cache=Path(cfg.paths.cache_dir), monitor=context.monitor, dry_run=True)
    export.parent.mkdir(parents=True)
    export.touch()
    again = count_plan(cfg, folds, learners, ResultsFile(tmp_path / "results.csv"), RATES).learners[0].stages[0]
    assert again.steps == (7,) * 5 and again.note == "2 in the cache, 5 reused by its other settings or folds"  # 2 fractions


def test_an_all_images_pool_is_pretrained_once_per_seed_for_every_fold(pbc_png_folder, compose_root, tmp_path):
    *_, plan = planned(compose_root, pbc_png_folder, tmp_path, "protocol.unlabeled_pool=all")
    ssl = plan.learners[0].stages[0]
    assert ssl.steps == (7, 7) and ssl.note == "10 reused by its other settings or folds"


def plan_of(*learners: LearnerPlan, episodes: int | None = None) -> Plan:
    return Plan(learners, "hand-made", "cpu", episodes=episodes)


FLOORS = {"pretrain.steps": 300, "steps": 50, "base_training.steps": 100, "meta_train_steps": 100, "episodes": 30}
SSL_LEARNER = LearnerPlan("ssl_finetune", 6, 0, (
    Stage("SSL pretraining", "pretrain.steps", (2000,) * 3, Rate(1.0, 0.0)),  # 6,000 s
    Stage("tasks fraction=1", "steps", (500,) * 6, Rate(1.0, 0.0)),  # 3,000 s
))  # fmt: skip
PIXELS = LearnerPlan("logreg_pixels", 6, 0, (Stage("tasks fraction=1", None, (0,) * 6, Rate(0.0, 10.0)),))  # 60 s


def test_a_limit_scales_ssl_first_and_keeps_every_learner():
    plan = plan_of(SSL_LEARNER, PIXELS)
    scaled, factors = fit_to_limit(plan, 6060.0, FLOORS)  # SSL alone can give back the 3,000 s
    assert set(factors) == {"pretrain.steps"} and scaled.seconds == pytest.approx(6060, abs=1)
    assert scaled.learners[0].stages[0].steps[0] == 1000 and scaled.learners[0].stages[1].steps == (500,) * 6
    assert [learner.name for learner in scaled.learners] == ["ssl_finetune", "logreg_pixels"]
    assert scaled.learners[1].seconds == 60 and all(learner.tasks == 6 for learner in scaled.learners)


def test_past_the_ssl_floor_the_fine_tuning_steps_shrink_down_to_theirs():
    plan = plan_of(SSL_LEARNER, PIXELS)
    scaled, factors = fit_to_limit(plan, 900 + 1200 + 60, FLOORS)  # SSL at its floor (300 x 3), fine-tuning 200 of 500 steps
    assert factors["pretrain.steps"] == 0.0 and factors["steps"] == pytest.approx(0.4, abs=1e-3)
    assert scaled.learners[0].stages[0].steps == (300,) * 3 and scaled.learners[0].stages[1].steps == (200,) * 6
    assert scaling(plan, factors, FLOORS) == {"ssl_finetune": {"pretrain.steps": [2000, 300], "steps": [500, 200]}}
    floored, _ = fit_to_limit(plan, 100.0, FLOORS)  # nothing fits: every budget at its floor, still over the limit
    assert floored.seconds == 900 + 300 + 60 and floored.learners[0].stages[1].steps == (50,) * 6
    assert what_fits(floored, 1000.0, [0, 1, 2], 5) == [
        "seeds=[0,1] (about 14 min)", "learners=[logreg_pixels] (about 60 s)", "data.split=stratified, one cut instead of 5 folds (about 4.2 min)",
    ]  # fmt: skip


def test_episodes_are_scaled_last_and_budgets_below_their_floor_never_change():
    small = LearnerPlan("protonet", 400, 0, (
        Stage("meta-training", "meta_train_steps", (80,), Rate(1.0, 0.0)),  # below its floor of 100
        Stage("tasks shots=1", None, (0,) * 400, Rate(0.0, 1.0)),
    ))  # fmt: skip
    plan = plan_of(small, episodes=100)
    scaled, factors = fit_to_limit(plan, 80 + 200, FLOORS)
    assert scaled.learners[0].stages[0].steps == (80,) and len(scaled.learners[0].stages[1].steps) == 200
    assert scaling(plan, factors, FLOORS) == {"episodes": [100, 50]}


def test_scaling_sets_the_learners_budgets_and_keeps_meta_training_in_whole_epochs(compose_root, tmp_path):
    cfg = compose_root("config", tmp_path, ["learners=[protonet,finetune]"])
    learners = learner_configs(cfg)
    apply_scaling(learners, {"protonet": {"meta_train_steps": [1000, 250]}, "finetune": {"steps": [100, 60]}})
    assert (learners["protonet"].learner.meta_train_steps, learners["protonet"].learner.meta_training.steps_per_epoch) == (200, 100)
    assert learners["finetune"].learner.steps == 60


def test_a_run_that_cannot_fit_at_the_floors_is_refused_before_any_task(compose_root, tmp_path):
    cfg = compose_root("config", tmp_path, ["debug=smoke", "learners=[prototype_pixels,finetune]", "time_limit=0.001"])
    with pytest.raises(ValueError, match=r"(?s)time_limit = 0.001 min does not fit this run .*plan: breastmnist.*would fit: "):
        compare(cfg)
    assert not (tmp_path / "results.csv").exists()


def test_learners_sharing_ssl_runs_are_scaled_alike_and_priced_with_them():
    """The first learner runs the shared SSL pretrainings; the second only reuses them. Both get one cap (else their
    settings, and so their runs, would part), and the second alone would pay for them."""
    shared = dict(knob="pretrain.steps", rate=Rate(1.0, 0.0), group="ssl simclr")
    first = LearnerPlan("ssl_linear_probe", 3, 0, (Stage("SSL pretraining", steps=(1000,) * 3, **shared),))
    second = LearnerPlan("ssl_prototype", 3, 0, (Stage("SSL pretraining", steps=(), note="3 shared with ssl_linear_probe", **shared),))
    plan = plan_of(first, second, PIXELS)
    _, factors = fit_to_limit(plan, 1500 + 60, FLOORS)
    assert scaling(plan, factors, FLOORS) == {name: {"pretrain.steps": [1000, 500]} for name in ("ssl_linear_probe", "ssl_prototype")}
    assert what_fits(plan, 1000.0, [0], 1) == ["learners=[logreg_pixels] (about 60 s)"]  # ssl_prototype alone costs 3,000 s
    assert alone(plan, ["ssl_prototype"]) == alone(plan, ["ssl_linear_probe", "ssl_prototype"]) == 3000
