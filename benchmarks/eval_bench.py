"""The evaluation case of :mod:`benchmarks.bench`: how fast the image metrics are.

Two figures (``python -m benchmarks.bench --cases eval``):

- **features/s** of each feature network (Inception-v3 pool3, VGG16 fc2, the lab's digit
  classifier) on 32×32 RGB images in ``[-1, 1]`` (the nets resize them to their own input: 299,
  224, or classify each channel at 32), batch ``batch``, median over ``repeats`` after a warm-up.
  The nets carry **random weights of their architectures** (:func:`random_inception_state`,
  :func:`random_vgg16_state`; an untrained classifier): speed does not depend on the values, and
  the bench needs no weights file.
- **one evaluation** at ``n`` generated against ``n`` real features of Inception's 2,048
  dimensions: FD (statistics and the matrix square root), precision / recall (k = 3) and density /
  coverage (k = 5) by exact chunked k-NN, timed as a whole and per part.
"""

from __future__ import annotations

import statistics
import time

import torch
import torchvision
from torch import nn


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of torch-fidelity's Inception-v3 graph with random weights: torchvision's
    Inception-v3 (no aux logits; the same layer names) with a 1008-way ``fc``. Kaiming-normal convs
    keep activations O(1) through its ~90 layers; BatchNorm statistics are random but valid."""
    with torch.device("meta"):
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = nn.Linear(2048, 1008)
    net = net.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.8, 1.2, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
                m.running_mean.normal_(0.0, 0.1, generator=gen)
                m.running_var.uniform_(0.8, 1.2, generator=gen)
                m.num_batches_tracked.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 0.02, generator=gen)
                m.bias.normal_(0.0, 1.0, generator=gen)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def random_vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A full torchvision VGG16 state dict (``features.*`` and ``classifier.*``), random, seeded."""
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None)
    vgg = vgg.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in vgg.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
                m.bias.normal_(0.0, 0.01, generator=gen)
    return {k: v.detach().clone() for k, v in vgg.state_dict().items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_rate(fn, items: int, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        rates.append(items / (time.perf_counter() - t))
    return statistics.median(rates)


def feature_nets(tmp_dir, quick: bool = False) -> dict[str, nn.Module]:
    """The feature nets with random weights of their architectures (files in ``tmp_dir``); a quick
    run only the digit classifier (no 100 MB / 550 MB weights files to write)."""
    from gan_lab.metrics.digit_classifier import DigitClassifier
    from gan_lab.metrics.features import INCEPTION_FILE, InceptionV3Features, VGG16FcFeatures
    from gan_lab.weights import VGG16_FILE

    nets: dict[str, nn.Module] = {}
    if not quick:
        inception, vgg = tmp_dir / INCEPTION_FILE, tmp_dir / VGG16_FILE
        torch.save(random_inception_state(), inception)
        torch.save(random_vgg16_state(), vgg)
        nets["inception_v3"] = InceptionV3Features(weights=str(inception))
        nets["vgg16_fc"] = VGG16FcFeatures(weights=str(vgg))
    nets["digit_classifier"] = DigitClassifier(32).eval()  # untrained: its per-channel forward at 32×32
    return nets


def bench_features(
    device: torch.device, batch: int, repeats: int, tmp_dir, quick: bool = False
) -> list[dict]:
    """features/s of each feature net on ``batch`` 32×32 RGB images."""
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    rows = []
    for name, net in feature_nets(tmp_dir, quick).items():
        net = net.to(device)
        if name == "digit_classifier":
            inputs = x.reshape(batch * 3, 1, 32, 32)  # each channel classified on its own

            def run(net=net, inputs=inputs):
                with torch.no_grad():
                    net.features(inputs)
        else:

            def run(net=net):
                with torch.no_grad():
                    net(x)

        rows.append(
            {
                "net": name,
                "batch": batch,
                "features_per_s": round(_median_rate(run, batch, repeats, device), 1),
            }
        )
        del net
    return rows


def bench_evaluation(device: torch.device, n: int, dim: int = 2048, chunk: int = 2048) -> dict:
    """Seconds of one FD + precision/recall + density/coverage evaluation at ``n`` × ``n``."""
    from gan_lab.metrics.frechet import frechet_distance, gaussian_statistics
    from gan_lab.metrics.prdc import prdc

    g = torch.Generator().manual_seed(0)
    real = torch.randn(n, dim, generator=g).to(device)
    fake = (torch.randn(n, dim, generator=g) * 1.1 + 0.1).to(device)
    _sync(device)
    t0 = time.perf_counter()
    fd = frechet_distance(*gaussian_statistics(real), *gaussian_statistics(fake))
    _sync(device)
    t1 = time.perf_counter()
    values = prdc(real, fake, chunk=chunk)
    _sync(device)
    t2 = time.perf_counter()
    return {
        "n": n,
        "dim": dim,
        "chunk": chunk,
        "fd_s": round(t1 - t0, 2),
        "prdc_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "fd": float(fd),
        **{k: float(v) for k, v in values.items()},
    }


def run_eval_bench(
    device: str = "cpu", n: int = 10_000, batch: int = 64, repeats: int = 3, quick: bool = False
) -> dict:
    """The evaluation case's JSON: features/s per net and one evaluation at ``n``."""
    import tempfile
    from pathlib import Path

    dev = torch.device(device)
    dim = 2048
    if quick:  # a smoke run: the digit classifier only, 200 × 200 features of 64 dimensions
        n, batch, repeats, dim = min(n, 200), min(batch, 4), 1, 64
    with tempfile.TemporaryDirectory() as tmp:
        features = bench_features(dev, batch, repeats, Path(tmp), quick)
    return {
        "case": "eval",
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "weights": "random weights of each architecture (speed does not depend on them)",
        "features": features,
        "evaluation": bench_evaluation(dev, n, dim),
    }
