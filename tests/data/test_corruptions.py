"""Image corruptions: seeded, in range, and worse at every severity on a known image."""

import pytest
import torch

from medfew.data.corruptions import CORRUPTIONS, corrupt

GREY = torch.full((1, 1, 32, 32), 0.5)  # mid-grey: noise is never clipped


def point() -> torch.Tensor:
    """A black 33 x 33 image with one white pixel in the middle."""
    image = torch.zeros(1, 1, 33, 33)
    image[..., 16, 16] = 1.0
    return image


def spread(image: torch.Tensor) -> float:
    """Standard deviation (pixels) of a point's blurred mass along the rows."""
    mass = image[0, 0].sum(dim=1)
    rows = torch.arange(len(mass), dtype=torch.float)
    centre = (mass * rows).sum() / mass.sum()
    return float(((mass * (rows - centre) ** 2).sum() / mass.sum()).sqrt())


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_is_seeded_and_keeps_shape_and_range(name):
    images = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    first = corrupt(images, name, 3, torch.Generator().manual_seed(7))
    again = corrupt(images, name, 3, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1
    assert not torch.equal(first, images)


def test_noise_variance_grows_with_severity_and_follows_the_seed():
    variances = [float((corrupt(GREY, "gaussian_noise", s, torch.Generator().manual_seed(0)) - GREY).var()) for s in range(1, 6)]
    assert variances == sorted(variances) and len(set(variances)) == 5
    assert variances[0] == pytest.approx(0.08**2, rel=0.2)  # below clipping: the std of its severity
    other = corrupt(GREY, "gaussian_noise", 1, torch.Generator().manual_seed(1))
    assert not torch.equal(other, corrupt(GREY, "gaussian_noise", 1, torch.Generator().manual_seed(0)))


def test_blur_width_grows_with_severity():
    widths = [spread(corrupt(point(), "blur", s)) for s in range(1, 6)]
    assert widths == sorted(widths) and len(set(widths)) == 5
    assert widths[-1] == pytest.approx(0.07 * 33, rel=0.1)  # sigma = 7 % of the side at severity 5


def test_contrast_and_pixelate_lose_more_at_every_severity():
    ramp = torch.linspace(0, 1, 32).repeat(32, 1)[None, None]
    stds = [float(corrupt(ramp, "contrast", s).std()) for s in range(1, 6)]
    assert stds == sorted(stds, reverse=True)
    levels = [len(corrupt(ramp, "pixelate", s).round(decimals=4).unique()) for s in range(1, 6)]
    assert levels == [19, 16, 13, 10, 8]  # blocks across: the kept share of the 32-pixel side


def test_unknown_corruption_or_severity_is_refused():
    with pytest.raises(ValueError, match="unknown corruption 'fog'; choose from gaussian_noise"):
        corrupt(GREY, "fog", 1)
    with pytest.raises(ValueError, match="severity must be an integer in 1..5, got 6"):
        corrupt(GREY, "blur", 6)
