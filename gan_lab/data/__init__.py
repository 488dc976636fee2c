"""LightningDataModules: 2D Gaussian mixtures and unconditional image sets (torchvision sets, image
folders, stacked digits); image files on disk (:mod:`gan_lab.data.image_files`). The paired
super-resolution data are :mod:`gan_lab.paired.data`."""

from gan_lab.data.context import RunContext, run_context
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
    "RunContext",
    "StackedDigits",
    "StackedMNIST",
    "ToyMixtureDataModule",
    "get_mixture",
    "grid",
    "mode_ids",
    "ring",
    "run_context",
]
