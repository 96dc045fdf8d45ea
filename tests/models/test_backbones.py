"""Backbones: feature sizes, CIFAR stem, exact export / reload, RGB -> grey weight adaptation, refused checkpoints."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from safetensors.torch import save_file
from torch import nn

from medfew.models import create_backbone, load_backbone, open_residual_branches, save_backbone

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class Payload:
    """Unpickling this runs ``open(marker, "w")``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize(
    ("name", "in_chans", "size", "features"), [("resnet18", 1, 32, 512), ("conv4", 1, 64, 1024), ("conv4", 3, 28, 64)]
)
def test_num_features(name: str, in_chans: int, size: int, features: int) -> None:
    backbone = create_backbone(name, in_chans=in_chans, image_size=size).eval()
    assert backbone.num_features == features
    assert backbone(torch.rand(2, in_chans, size, size)).shape == (2, features)


@pytest.mark.parametrize(("stem", "layer1", "layer4"), [(None, 7, 1), ("cifar", 28, 4)])
def test_cifar_stem_keeps_28px_feature_maps(stem: str | None, layer1: int, layer4: int) -> None:
    backbone = create_backbone("resnet18", in_chans=1, image_size=28, stem=stem).eval()
    sizes = {}
    for name in ("layer1", "layer4"):
        getattr(backbone.net, name).register_forward_hook(lambda module, args, out, name=name: sizes.update({name: out.shape}))
    assert backbone(torch.rand(2, 1, 28, 28)).shape == (2, 512)
    assert sizes == {"layer1": (2, 64, layer1, layer1), "layer4": (2, 512, layer4, layer4)}
    assert backbone.net.conv1.kernel_size == ((3, 3) if stem else (7, 7))


@pytest.mark.parametrize("config", ["resnet18", "resnet18_cifar", "vit_tiny"])  # vit_tiny extends resnet18
def test_resnet_configs_build(config: str) -> None:
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=[f"backbone={config}", "data.image_size=32"])
    backbone = instantiate(cfg.backbone)()
    assert backbone.spec["name"] == cfg.backbone.name and backbone.spec.get("stem") == cfg.backbone.get("stem")
    assert backbone(torch.rand(2, 1, 32, 32)).shape == (2, backbone.num_features)


@pytest.mark.parametrize(("name", "stem"), [("conv4", None), ("resnet18", None), ("resnet18", "cifar")])
def test_export_reload_gives_identical_outputs(tmp_path: Path, name: str, stem: str | None) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(name, in_chans=1, image_size=32, stem=stem).eval()
    reloaded = load_backbone(save_backbone(backbone, tmp_path / "export.safetensors")).eval()
    x = torch.rand(3, 1, 32, 32)
    assert reloaded.spec["name"] == name and reloaded.num_features == backbone.num_features
    assert reloaded.spec.get("stem") == stem
    assert torch.equal(backbone(x), reloaded(x))


def test_cifar_stem_takes_imagenet_weights_but_conv1(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm.create_model("resnet18", in_chans=3).state_dict().items()}
    path = tmp_path / "resnet18.safetensors"
    save_file(state, str(path))
    with pytest.warns(UserWarning, match="stem 'cifar' re-initialises conv1; dropped conv1.weight from the checkpoint"):
        grey = create_backbone("resnet18", in_chans=1, image_size=28, pretrained=path, stem="cifar")
    assert grey.net.conv1.weight.shape == (64, 1, 3, 3) and isinstance(grey.net.maxpool, nn.Identity)
    assert torch.equal(grey.net.bn1.running_var, state["bn1.running_var"])
    assert torch.equal(grey.net.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_stem_mismatches_are_refused(tmp_path: Path) -> None:
    export = save_backbone(create_backbone("resnet18", image_size=28), tmp_path / "imagenet_stem.safetensors")
    with pytest.raises(ValueError, match="holds a 'resnet18' backbone with stem None, but the config asks for stem 'cifar'"):
        create_backbone("resnet18", image_size=28, pretrained=export, stem="cifar")
    with pytest.raises(TypeError, match="stem='cifar' needs a timm ResNet, but 'conv4' is a Conv4"):
        create_backbone("conv4", image_size=28, stem="cifar")
    with pytest.raises(ValueError, match="unknown stem 'cifar10' for backbone 'resnet18'; valid stems are None, 'cifar'"):
        create_backbone("resnet18", image_size=28, stem="cifar10")


@pytest.mark.parametrize("suffix", ["safetensors", "pt"])
def test_rgb_timm_weights_adapt_to_one_channel(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(0)
    rgb = timm.create_model("resnet18", in_chans=3)  # with its 1000-class fc head
    state = {k: v.contiguous() for k, v in rgb.state_dict().items()}
    path = tmp_path / f"resnet18.{suffix}"
    save_file(state, str(path)) if suffix == "safetensors" else torch.save(state, path)
    grey = create_backbone("resnet18", in_chans=1, image_size=32, pretrained=path)
    assert torch.allclose(grey.net.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(grey.net.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert grey.mean.flatten().tolist() == pytest.approx([sum(timm.data.IMAGENET_DEFAULT_MEAN) / 3])


def test_unknown_backbone_lists_close_names() -> None:
    with pytest.raises(KeyError, match="unknown backbone 'resnet_18'. Close names: .*resnet18"):
        create_backbone("resnet_18")


def test_checkpoint_from_another_architecture(tmp_path: Path) -> None:
    export = save_backbone(create_backbone("conv4", image_size=32), tmp_path / "conv4.safetensors")
    with pytest.raises(ValueError, match="holds a 'conv4' backbone, but the config asks for 'resnet18'"):
        create_backbone("resnet18", image_size=32, pretrained=export)
    state = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}, str(state))
    with pytest.raises(ValueError, match="resnet18.safetensors does not fit this ResNet network \\(checkpoint from"):
        create_backbone("resnet34", image_size=32, pretrained=state)


def test_pickled_payload_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": create_backbone("conv4").net.state_dict(), "extra": Payload(marker)}, path)
    with pytest.raises(ValueError, match=f"refusing to load {path}: it is not a plain tensor checkpoint"):
        create_backbone("conv4", pretrained=path)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="absent.pt not found"):
        create_backbone("conv4", pretrained=tmp_path / "absent.pt")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(1)}, str(plain))
    with pytest.raises(ValueError, match="plain.safetensors is not a medfew backbone export"):
        load_backbone(plain)


def test_offline_hub_weights_give_a_clear_error() -> None:
    code = "from medfew.models import create_backbone; create_backbone('resnet18', pretrained='timm')"
    offline = os.environ | {"HF_HUB_OFFLINE": "1"}  # fail at once instead of retrying for a minute
    result = subprocess.run([sys.executable, "-c", code], env=offline, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "could not fetch timm's pretrained weights for 'resnet18'" in result.stderr
    assert "backbone.pretrained=/path/to/weights.safetensors" in result.stderr


@pytest.mark.parametrize(
    "name, size, message",
    [
        ("conv4", 15, r"backbone 'conv4' cannot take 1 x 15 x 15 images \(.*\); the smallest size it takes is 16"),
        ("vit_tiny_patch16_224", 64, r"cannot take 1 x 64 x 64 images .*a ViT takes only its img_size"),
    ],
)
def test_an_image_size_the_network_cannot_take_names_the_smallest_it_can(name, size, message):
    with pytest.raises(ValueError, match=message):
        create_backbone(name, in_chans=1, image_size=size)
    if name == "conv4":
        assert create_backbone(name, in_chans=1, image_size=16).num_features == 64  # 16 px: one pixel after 4 pools


def test_open_residual_branches_matches_timm_without_zero_init_last() -> None:
    torch.manual_seed(0)
    opened = create_backbone("resnet18", in_chans=1, image_size=28)
    torch.manual_seed(0)
    reference = create_backbone("resnet18", in_chans=1, image_size=28, model_kwargs={"zero_init_last": False})
    assert open_residual_branches(opened) == 8  # the last BatchNorm of each of ResNet-18's 8 blocks
    assert all(torch.equal(a, b) for a, b in zip(opened.state_dict().values(), reference.state_dict().values()))
    assert open_residual_branches(opened) == 0 and open_residual_branches(create_backbone("conv4", image_size=28)) == 0
