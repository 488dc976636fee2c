"""Simultaneous gradient descent (``GANModule(remedies=Remedies(simultaneous=True))``), the update of ALI's and PacGAN's
code (``ali_algorithm``): one fake batch, both players' gradients at the same parameters, both steps."""

from __future__ import annotations

import copy
from functools import partial
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from tiny_fit import quiet_trainer

from gan_lab.checks import check_simultaneous, check_trainer
from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator, member
from gan_lab.regularizers import R1, PixelLoss
from gan_lab.settings import Remedies

SGD = partial(torch.optim.SGD, lr=0.5)  # plain steps: G's step shows at which D its gradient was taken


def toy(members: int, seed: int = 0, simultaneous: bool = True, unrolled_steps: int = 0, **kw) -> GANModule:
    """A toy GANModule, with simultaneous steps unless told otherwise."""
    G = ToyGenerator(members=members, hidden=8, layers=2, batch_norm=True)
    D = ToyDiscriminator(members=members, hidden=8, layers=2)
    remedies = Remedies(simultaneous=simultaneous, unrolled_steps=unrolled_steps)
    return GANModule(G, D, seed=seed, remedies=remedies, **kw)


class AtBatchStart(L.Callback):
    """G, D, the noise streams and the batch as they are when each batch starts."""

    def __init__(self) -> None:
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        nets = copy.deepcopy(pl_module.G), copy.deepcopy(pl_module.D)
        self.seen.append((*nets, copy.deepcopy(pl_module.streams), batch.clone()))


def test_one_step_takes_both_gradients_at_the_same_parameters_from_one_fake_batch():
    """By hand: x̃ = G₀(z) once; D₁ = D₀ − lr ∇_D [softplus(−D₀(x)) + softplus(D₀(x̃))] and
    G₁ = G₀ − lr ∇_G softplus(−D₀(x̃)), each member's mean, summed over members. Alternating steps
    (G's gradient at D₁, on a second fake batch) miss it by far: the steps are lr 0.5."""
    module = toy(2, seed=4, objective="non_saturating", optimizer_g=SGD, optimizer_d=SGD)
    start = AtBatchStart()
    quiet_trainer(1, [start]).fit(module, ToyMixtureDataModule("ring8", batch_size=16))
    G0, D0, streams, real = start.seen[0]
    assert module.d_steps == module.g_steps == 1

    z = streams.normal((16, G0.z_dim), torch.device("cpu"), 0)  # the step's draw (counter-based)
    fake = G0(z)
    d_loss = (F.softplus(-D0(real)) + F.softplus(D0(fake.detach()))).mean(-1).sum()
    grads_d = torch.autograd.grad(d_loss, list(D0.parameters()))
    g_loss = F.softplus(-D0(fake)).mean(-1).sum()
    grads_g = torch.autograd.grad(g_loss, list(G0.parameters()))
    with torch.no_grad():
        for net, net0, grads in ((module.D, D0, grads_d), (module.G, G0, grads_g)):
            for (name, p), p0, g in zip(net.named_parameters(), net0.parameters(), grads, strict=True):
                torch.testing.assert_close(p, p0 - 0.5 * g, rtol=1e-5, atol=1e-6, msg=name)
    # G ran once in the step (train mode): its BatchNorm statistics are those of the one fake batch
    for (name, b), b0 in zip(module.G.named_buffers(), G0.buffers(), strict=True):
        torch.testing.assert_close(b, b0, msg=name)


@pytest.mark.parametrize(
    "kw",
    [
        {"objective": "wasserstein", "regularizers": ["wgan_gp"]},
        {"objective": "relativistic"},  # G's loss reads D's real logits too
    ],
    ids=["wgan_gp", "relativistic"],
)
def test_members_of_a_simultaneous_ensemble_are_their_single_runs(kw):
    """With a D penalty (WGAN-GP) or a relativistic G loss, and Adam: member k after 8 steps is the
    single run of seed + k."""
    ensemble = toy(2, seed=5, **kw)
    quiet_trainer(8).fit(ensemble, ToyMixtureDataModule("ring8", batch_size=16))
    for k in range(2):
        single = toy(1, seed=5 + k, **kw)
        quiet_trainer(8).fit(single, ToyMixtureDataModule("ring8", batch_size=16))
        for net_e, net_1 in ((ensemble.G, single.G), (ensemble.D, single.D)):
            ref = net_1.state_dict()
            for key, value in member(net_e, k).items():
                torch.testing.assert_close(value, ref[key], rtol=0, atol=1e-6, msg=f"member {k} {key}")
    assert ensemble.g_steps == ensemble.d_steps == 8
    alternating = toy(2, seed=5, **{**kw, "simultaneous": False})
    quiet_trainer(8).fit(alternating, ToyMixtureDataModule("ring8", batch_size=16))
    assert not torch.allclose(member(alternating.G, 0)["net.0.weight"], member(ensemble.G, 0)["net.0.weight"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_critic": 5}, "n_critic must be 1 \\(got 5\\)"),
        ({"unrolled_steps": 1}, "cannot be combined with unrolled_steps=1"),
        ({"regularizers": [R1(weight=1.0, every=16)]}, "does not support a lazy penalty \\(r1\\)"),
        ({"simultaneous": "yes"}, "remedies.simultaneous must be true or false"),
    ],
)
def test_what_simultaneous_steps_cannot_do_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        toy(2, **kwargs)


def test_g_side_regularizers_and_16_mixed_are_refused():
    with pytest.raises(ConfigError, match="does not support a G-side regularizer \\(pixel\\)"):
        check_simultaneous(True, 1, 0, [PixelLoss()], 1.0)
    with pytest.raises(ConfigError, match="needs the adversarial game"):
        check_simultaneous(True, 1, 0, [PixelLoss()], 0.0)
    scaled = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=object()), strategy=None)
    with pytest.raises(ConfigError, match="cannot train under 16-mixed precision"):
        check_trainer(scaled, torch.nn.Linear(2, 1), [], simultaneous=True)
    check_trainer(scaled, torch.nn.Linear(2, 1), [], simultaneous=False)  # alternating: fine
