"""Plain nn.Modules (no Lightning in them): toy ensemble MLPs, image nets."""

from gan_lab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lab.nets.ensemble import EnsembleBatchNorm, EnsembleLinear
from gan_lab.nets.resnet import SNResNetDiscriminator, SNResNetGenerator
from gan_lab.nets.toy import ToyDiscriminator, ToyGenerator, member

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "EnsembleBatchNorm",
    "EnsembleLinear",
    "SNResNetDiscriminator",
    "SNResNetGenerator",
    "ToyDiscriminator",
    "ToyGenerator",
    "member",
]
