"""Model bundles: every learner kind written after its fit and read back predicts what the learner in memory
predicts; a bundle that would run code (a pickle, a foreign ``_target_``) is refused unread."""

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medfew.data.episodes import to_float
from medfew.deploy.bundle import INFO, WEIGHTS, load_bundle
from medfew.deploy.predict import predict_input

# learner -> state kind; meta_train_steps=1 runs meta-training for protonet and maml, pmf pretrains (SimCLR)
KINDS = {
    "prototype_pixels": "centroids", "prototype": "centroids", "logreg_pixels": "pipeline", "logreg": "pipeline",
    "knn": "pipeline", "rfs": "pipeline", "finetune": "network", "linear_probe": "network", "baseline_pp": "network",
    "pmf": "network", "protonet": "tensor", "matching_net": "tensors", "maml": "adapted_network", "anil": "adapted_network",
    "metasgd": "adapted_network", "ensemble": "members",
}  # fmt: skip
TRAINED = {"protonet": {"meta_train_steps": 1}, "maml": {"meta_train_steps": 1}, "rfs": {"base_training.steps": 2}}


@pytest.mark.parametrize("name", KINDS)
def test_every_learner_kind_round_trips_to_the_same_probabilities(name, tmp_path, deploy_helpers):
    fit_and_save, tiny_images, _ = deploy_helpers
    fitted = fit_and_save(name, tmp_path, **TRAINED.get(name, {}))
    query = to_float(tiny_images().images[::2])
    expected = fitted.learner.predict(fitted.state, query)
    bundle = load_bundle(tmp_path / "model")
    assert bundle.info["state"]["kind"] == KINDS[name] and bundle.class_names == ("cyst", "mass", "normal")
    torch.testing.assert_close(bundle.predict(query), expected, rtol=0, atol=1e-6)


def test_predictions_csv_holds_the_in_memory_probabilities_of_the_same_files(tmp_path, deploy_helpers):
    fit_and_save, tiny_images, save_png = deploy_helpers
    data = tiny_images(channels=3, size=32)
    fitted = fit_and_save("finetune", tmp_path, data)
    for i, image in enumerate(data.images):
        save_png(image, tmp_path / "scans" / f"{i:02d}.png")
    record = predict_input(load_bundle(tmp_path / "model"), tmp_path / "scans", tmp_path / "run")
    lines = (tmp_path / "run" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "file,predicted,p_cyst,p_mass,p_normal,note" and record["files"] == 24
    read = torch.tensor([[float(v) for v in line.split(",")[2:5]] for line in lines[1:]])
    expected = fitted.learner.predict(fitted.state, to_float(data.images))
    torch.testing.assert_close(read, expected, rtol=0, atol=1e-6)


def test_bundle_json_records_config_classes_preprocessing_and_provenance(tmp_path, deploy_helpers):
    fit_and_save = deploy_helpers[0]
    fit_and_save("prototype", tmp_path)
    info = json.loads((tmp_path / "model" / INFO).read_text())
    assert info["config"]["_target_"] == "medfew.learners.prototype.NearestCentroid"
    assert info["preprocessing"] | {"backbones": None} == {
        "height": 28, "width": 28, "channels": 1, "bits": 16, "backbones": None,
        "pixels": "uint8 / 255: float in [0, 1]; each backbone then normalises (x - mean) / std",
    }  # fmt: skip
    assert info["preprocessing"]["backbones"]["backbone"]["mean"] == [0.5]
    assert info["data"]["images"] == 24 and len(info["data"]["fingerprint"]) == 16 and info["medfew_version"]
    assert set(load_file(str(tmp_path / "model" / WEIGHTS))) >= {"state.prototypes", "state.centre"}


class Payload:
    """A pickle that, once unpickled, would create the file ``ran``."""

    def __init__(self, ran: Path) -> None:
        self.ran = ran

    def __reduce__(self):
        return (Path.touch, (self.ran,))


def test_a_pickle_in_place_of_the_weights_is_refused_unread(tmp_path, deploy_helpers):
    fit_and_save = deploy_helpers[0]
    fit_and_save("prototype_pixels", tmp_path)
    ran = tmp_path / "ran"
    (tmp_path / "model" / WEIGHTS).write_bytes(pickle.dumps(Payload(ran)))
    with pytest.raises(ValueError, match=r"weights.safetensors is not a safetensors file .*refused: .*never unpickles"):
        load_bundle(tmp_path / "model")
    torch.save({"weights": Payload(ran)}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"model=.*model.pt: a pickle, never loaded"):
        load_bundle(tmp_path / "model.pt")
    assert not ran.exists()


def test_a_config_naming_code_outside_medfew_is_refused(tmp_path, deploy_helpers):
    fit_and_save = deploy_helpers[0]
    fit_and_save("prototype_pixels", tmp_path)
    path = tmp_path / "model" / INFO
    info = json.loads(path.read_text())
    info["config"]["backbone"] = {"_target_": "os.system", "command": "touch ran"}
    path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"config.backbone._target_ = 'os.system': a model bundle may only name medfew code"):
        load_bundle(tmp_path / "model")


def test_weights_of_another_learner_are_an_error_naming_the_file(tmp_path, deploy_helpers):
    fit_and_save = deploy_helpers[0]
    fit_and_save("prototype", tmp_path / "a")
    fit_and_save("finetune", tmp_path / "b")
    (tmp_path / "a" / "model" / WEIGHTS).write_bytes((tmp_path / "b" / "model" / WEIGHTS).read_bytes())
    with pytest.raises(ValueError, match=r"weights.safetensors lacks the tensor 'prototypes' of its centroids state"):
        load_bundle(tmp_path / "a" / "model")  # the backbones fit: both are the same Conv-4
    fit_and_save("logreg_pixels", tmp_path / "c")
    (tmp_path / "c" / "model" / WEIGHTS).write_bytes((tmp_path / "b" / "model" / WEIGHTS).read_bytes())
    with pytest.raises(ValueError, match=r"weights.safetensors does not fit the learner of its config: .*Unexpected key"):
        load_bundle(tmp_path / "c" / "model")
