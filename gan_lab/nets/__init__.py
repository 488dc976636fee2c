"""Plain nn.Modules (no Lightning in them): toy ensemble MLPs, image nets."""

from gan_lab.nets.ensemble import EnsembleBatchNorm, EnsembleLinear
from gan_lab.nets.toy import ToyDiscriminator, ToyGenerator, member

__all__ = ["EnsembleBatchNorm", "EnsembleLinear", "ToyDiscriminator", "ToyGenerator", "member"]
