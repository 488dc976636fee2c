"""gan_lab: a PyTorch Lightning lab for comparing GAN objectives and regularizers.

The layout and the contracts between the parts are described in DESIGN.md (shared with the team):
nets know nothing of Lightning, losses know nothing of nets, and :class:`gan_lab.module.GANModule`
composes them.
"""

__version__ = "0.1.0"
