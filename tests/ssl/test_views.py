import pytest
import torch

from medfew.ssl import Views, ViewSpec, build_augment


def test_views_are_float_in_unit_range_with_per_image_randomness(pbc32):
    torch.manual_seed(0)
    batch = pbc32.images[:1].repeat(8, 1, 1, 1)  # one image eight times
    views = Views(build_augment(None, 32), ViewSpec(n_global=2, n_local=3), 32)(batch)
    assert len(views) == 5
    for view in views:
        assert view.shape == (8, 3, 32, 32) and view.dtype == torch.float32
        assert 0 <= view.min() and view.max() <= 1
        assert not torch.allclose(view[0], view[1])  # parameters drawn per image


def test_grey_images_stay_grey(pbc32):
    """No hue or saturation jitter: R = G = B in, R = G = B out (Gaussian noise, drawn per
    channel, is the one step that would tint a grey image replicated to RGB: off here)."""
    grey = pbc32.images[:, :1].repeat(1, 3, 1, 1)
    augment = build_augment({"rotation": 180.0, "vflip": 0.5, "noise_prob": 0.0}, 32)
    for view in Views(augment, ViewSpec(n_local=1), 32)(grey):
        assert torch.allclose(view[:, 0], view[:, 1], atol=1e-5) and torch.allclose(view[:, 1], view[:, 2], atol=1e-5)


def test_augment_is_a_dict_of_medical_augment_arguments_or_a_callable(pbc32):
    identity = Views(lambda x: x, ViewSpec(), 32)(pbc32.images)
    torch.testing.assert_close(identity[0], pbc32.images.float() / 255)
    with pytest.raises(TypeError, match="augment must be a dict"):
        build_augment(0.5, 32)
    with pytest.raises(TypeError, match="hue"):
        build_augment({"hue": 0.1}, 32)
