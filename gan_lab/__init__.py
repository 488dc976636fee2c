"""gan_lab: a PyTorch Lightning lab for comparing GAN objectives and regularizers.

The layout and the contracts between the parts are described in docs/DESIGN.md:
nets know nothing of Lightning, losses know nothing of nets, and :class:`gan_lab.module.GANModule`
composes them.
"""

import os as _os

import torch as _torch

__version__ = "0.1.0"

# GAN training on CPU makes subnormal floats: Adam's moments of parameters whose gradient is exactly
# zero (dead ReLU units) decay through the subnormal range, and x86 CPUs compute on them ~100x
# slower (a WGAN-GP demo run went from 11 ms to 350 ms per critic step). Flushing them to zero is
# what GPUs do anyway. The flag is per thread and inherited by threads created later, so it is set
# here, before torch starts its worker threads. GAN_LAB_FLUSH_DENORMAL=0 leaves it alone.
if _os.environ.get("GAN_LAB_FLUSH_DENORMAL", "1") != "0":
    _torch.set_flush_denormal(True)
