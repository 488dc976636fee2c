"""DCGAN-32 (``gan_lab.nets.dcgan`` at its default size: the nets that ``make bench`` and
``make gpu-check`` time): shapes and ranges, a per-sample D for gradient penalties, seeded init,
refused sizes, and a short fit in GANModule on random images."""

import math

import pytest
import torch

from benchmarks.bench import _image_datamodule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lab.regularizers.gradient_penalty import per_sample_grad_norm
from gan_lab.settings import Speed


@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_and_ranges(channels):
    G = DCGANGenerator(z_dim=16, ngf=8, out_channels=channels)
    D = DCGANDiscriminator(in_channels=channels, ndf=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, channels, 32, 32) and x.abs().max() <= 1
    assert D(x).shape == (5,)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in D.modules())


def test_dcgan_discriminator_is_per_sample_for_gradient_penalties():
    """No BatchNorm in D: sample i's input gradient does not depend on the other samples."""
    D = DCGANDiscriminator(ndf=4)
    x = torch.randn(4, 3, 32, 32)
    together = per_sample_grad_norm(D, x)
    alone = torch.cat([per_sample_grad_norm(D, x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)


def test_dcgan_init_is_seeded_and_small():
    a, b = DCGANGenerator(ngf=4, seed=1), DCGANGenerator(ngf=4, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    conv = DCGANDiscriminator(ndf=16).net[2].weight
    assert conv.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("kw", [{"ngf": 0}, {"z_dim": -1}, {"out_channels": 1.5}])
def test_dcgan_bad_sizes_are_refused(kw):
    with pytest.raises(ConfigError, match="DCGAN"):
        DCGANGenerator(**kw)


def test_dcgan_discriminator_refuses_wrong_channels():
    with pytest.raises(ConfigError, match=r"expects \(B, 3, 32, 32\)"):
        DCGANDiscriminator()(torch.randn(2, 1, 32, 32))


def test_dcgan_trains_in_the_module():
    """DCGAN-32 nets (no member dim) train in GANModule on random images, with R1 on D: 3 batches
    are 3 D and 3 G steps, every logged loss term is finite at every step, and every parameter
    tensor of G and of D moves (and stays finite)."""
    import lightning as L

    G, D = DCGANGenerator(z_dim=8, ngf=4), DCGANDiscriminator(ndf=4)
    module = GANModule(G, D, regularizers=["r1"], speed=Speed(cpu_threads=1))  # tiny nets: one thread
    assert module.members is None and module.batch_ndim == 1
    before = {net: [p.detach().clone() for p in net.parameters()] for net in (G, D)}
    rows = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            rows.append({k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k})

    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        log_every_n_steps=1,  # the module logs its loss terms on the loggers' steps only
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    trainer.fit(module, _image_datamodule(batch=4, steps=3))
    assert (module.d_steps, module.g_steps) == (3, 3)
    assert len(rows) == 3 and all({"d/loss", "d/r1", "g/loss"} <= set(row) for row in rows), rows
    assert all(math.isfinite(v) for row in rows for v in row.values()), rows
    for net in (G, D):
        for (name, p), p0 in zip(net.named_parameters(), before[net], strict=True):
            moved, finite = not torch.equal(p, p0), bool(torch.isfinite(p).all())
            assert moved and finite, f"{type(net).__name__}.{name}: moved {moved}, finite {finite}"
