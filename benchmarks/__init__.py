"""Developer tools of the lab, not part of the installed ``gan_lab`` package (run from the repo root).

- :mod:`benchmarks.bench`: the lab's training step against a hand-written PyTorch loop
  (``make bench``: ``python -m benchmarks.bench --device cpu``);
- :mod:`benchmarks.eval_bench`: its ``eval`` case, the speed of the image metrics (and the
  random-weight state dicts of Inception-v3 and VGG16 that it and the tests use);
- :mod:`benchmarks.gpu_check`: the checks that need a GPU (``make gpu-check``: torch, lightning
  and torchvision only, no wandb or kornia);
- :mod:`benchmarks.prdc_memory`: the memory of :func:`gan_lab.metrics.prdc.prdc` in a fresh process.

``gan_lab`` never imports this package (``tests/test_layout.py`` checks it).
"""
