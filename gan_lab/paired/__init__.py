"""The paired (super-resolution) wing: image-to-image GANs that map a condition to a target.

- :mod:`gan_lab.paired.nets`: SRResNet (SRGAN's G, Ledig et al. 2017) and a PatchGAN D that may
  judge ``(output, condition)`` pairs;
- :mod:`gan_lab.paired.data`: ``(low-res, high-res)`` crops of any image folder, bicubic
  degradation (:class:`~gan_lab.paired.data.PairedImageDataModule`);
- :mod:`gan_lab.paired.evaluator`: PSNR / SSIM / edge error on held-out pairs
  (:class:`~gan_lab.paired.evaluator.SRMetricsEvaluator`), and its report section
  (:mod:`gan_lab.paired.report`).

A paired run is a :class:`~gan_lab.module.GANModule` with ``paired`` set
(:class:`~gan_lab.settings.Paired`); ``experiments/sr/`` holds its configs. The image terms it
trains G with (perceptual VGG16, Sobel edge, pixel, style) are regularizers, found by name in
:data:`gan_lab.regularizers.REGULARIZERS` (:mod:`gan_lab.regularizers.image`): they live with the
other regularizers so that the registry imports nothing of this wing (no package cycle).
"""

from gan_lab.paired.data import PairedImageDataModule
from gan_lab.paired.evaluator import SRMetricsEvaluator
from gan_lab.paired.nets import PatchDiscriminator, SRResNet

__all__ = ["PairedImageDataModule", "PatchDiscriminator", "SRMetricsEvaluator", "SRResNet"]
