"""LightningDataModules: 2D Gaussian mixtures, unconditional image sets (torchvision sets, image
folders, stacked digits) and paired super-resolution images."""

from gan_lab.data.images import IMAGE_DATASETS, EpochSampler, ImageDataModule, ImageSet, ImageSource
from gan_lab.data.stacked import StackedDigits, StackedMNIST, mode_ids
from gan_lab.data.toy import MIXTURES, GaussianMixture2D, ToyMixtureDataModule, get_mixture, grid, ring

__all__ = [
    "IMAGE_DATASETS",
    "MIXTURES",
    "EpochSampler",
    "GaussianMixture2D",
    "ImageDataModule",
    "ImageSet",
    "ImageSource",
    "StackedDigits",
    "StackedMNIST",
    "ToyMixtureDataModule",
    "get_mixture",
    "grid",
    "mode_ids",
    "ring",
]
