"""LightningDataModules: 2D Gaussian mixtures (and, later, image sets)."""

from gan_lab.data.toy import MIXTURES, GaussianMixture2D, ToyMixtureDataModule, get_mixture, grid, ring

__all__ = ["MIXTURES", "GaussianMixture2D", "ToyMixtureDataModule", "get_mixture", "grid", "ring"]
