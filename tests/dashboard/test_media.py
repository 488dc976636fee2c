"""The media of an evaluation (gan_lab.dashboard.media): scatters by hand, grids against torchvision."""

import numpy as np
import pytest
import torch
from torchvision.utils import make_grid

from gan_lab.dashboard.media import MEAN, SAMPLE, MediaSettings, image_grid, scatter_image
from gan_lab.errors import ConfigError


def test_scatter_puts_each_sample_at_its_pixel():
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    lim, size = 1.35, 101
    samples = torch.tensor(
        [[0.5, 0.5], [-0.25, 0.75], [float("nan"), 0.0], [5.0, 0.0]]
    )  # NaN, outside: dropped
    img = scatter_image(samples, means, size=size)

    def pixel(x, y):  # by hand: x right, y up, [-lim, lim] onto [0, size - 1]
        return round((lim - y) / (2 * lim) * (size - 1)), round((x + lim) / (2 * lim) * (size - 1))

    for x, y in samples[:2].tolist():
        r, c = pixel(x, y)
        assert img[r, c].tolist() == list(SAMPLE) and img[r + 1, c + 1].tolist() == list(SAMPLE)
    for x, y in means.tolist():
        assert img[pixel(x, y)].tolist() == list(MEAN)
    assert (img == SAMPLE).all(-1).sum() == 2 * 4  # two samples of 2 x 2 pixels, nothing else
    assert scatter_image(samples, means, size=size, count=1)[pixel(-0.25, 0.75)].tolist() != list(SAMPLE)


def test_image_grid_is_torchvisions_grid_at_its_own_size():
    images = torch.rand(6, 3, 8, 8) * 2 - 1
    grid = make_grid((images + 1) / 2, nrow=3, padding=2, pad_value=1.0)  # (3, 22, 32)
    ours = image_grid(images, size=32)
    assert ours.shape == (22, 32, 3)
    assert np.array_equal(ours, (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    assert image_grid(images, size=64).shape == (44, 64, 3) and image_grid(images, count=4).shape[2] == 3
    assert image_grid(torch.zeros(2, 1, 8, 8), size=16).shape[2] == 3  # grey images as RGB


def test_settings_refuse_bad_values(monkeypatch):
    with pytest.raises(ConfigError, match="at least 16"):
        MediaSettings(size=8)
    monkeypatch.setenv("GAN_LAB_MEDIA", "off")
    monkeypatch.setenv("GAN_LAB_MEDIA_SIZE", "128")
    assert MediaSettings.from_env() == MediaSettings(enabled=False, size=128)
    monkeypatch.setenv("GAN_LAB_MEDIA_COUNT", "many")
    with pytest.raises(ConfigError, match="integers"):
        MediaSettings.from_env()
