"""Mixed precision: bf16-mixed fits, penalties under autocast against float32, the scaled-gradient
recipe under a GradScaler, and gradient clipping on unscaled gradients.

CPU has float16 autocast and a CPU GradScaler, so the 16-mixed code path (scale before
``autograd.grad``, unscale, ordinary scaled backward, unscale before clipping) runs here through a
``MixedPrecision("16-mixed", "cpu", GradScaler("cpu"))`` plugin; the CUDA test checks the same on a
GPU and runs only where CUDA exists (and in ``make gpu-check``).
"""

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision

from benchmarks.gpu_check import OBJECTIVES, penalty_equivalence, penalty_gradients_match, short_fit
from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.regularizers import PenaltyInputs, get_regularizer
from gan_lab.regularizers.gradient_penalty import per_sample_grad_norm

#: bf16-mixed against float32, per logged loss term after 4 steps of the same toy run:
#: |bf16 − fp32| <= BF16_ATOL + BF16_RTOL · |fp32|. bf16 keeps 8 significant bits (unit roundoff
#: 2^-8 ≈ 4e-3: about 3 significant digits). Measured over the 12 cases below (CPU, one thread): at
#: most 1.6e-3 relative on the terms of size ~0.04 to 8 (the penalties' 1.6e-3, the losses' 2e-4),
#: and 1.5e-4 absolute on WGAN losses near 0 (f − r of two logits, whose relative error is
#: meaningless); 1e-2 and 1e-3 leave a factor of about 6.
BF16_RTOL, BF16_ATOL = 1e-2, 1e-3


@pytest.mark.parametrize("reg", ["wgan_gp", "r1"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_fits_under_bf16_mixed_with_finite_losses(objective, reg):
    """Every objective fits under bf16-mixed with finite losses, and those losses are the float32
    run's (same seeds, data, noise and penalty points) to bf16's precision (``BF16_RTOL``,
    ``BF16_ATOL``), yet not the same bits: the run did compute in bfloat16."""
    result = short_fit(objective, [reg], "bf16-mixed", batches=4)
    assert result["finite"], result
    assert f"d/{reg}" in result["last"] and "d/loss" in result["last"]
    assert result["d_steps"] == 4
    reference = short_fit(objective, [reg], "32-true", batches=4)
    assert reference["finite"], reference
    terms = sorted(reference["last"])  # the loss terms logged at the last step
    assert set(result["last"]) == set(terms) and {"d/loss", f"d/{reg}", "g/loss"} <= set(terms)
    bf16 = [result["last"][k] for k in terms]
    fp32 = [reference["last"][k] for k in terms]
    for name, a, b in zip(terms, bf16, fp32):
        assert abs(a - b) <= BF16_ATOL + BF16_RTOL * abs(b), f"{name}: bf16-mixed {a} vs float32 {b}"
    assert bf16 != fp32, "bf16-mixed gave float32's bits: the run did not compute in bfloat16"


@pytest.mark.parametrize("objective", ["non_saturating", "wasserstein"])
def test_fits_under_16_mixed_with_a_grad_scaler_on_cpu(objective):
    reg = "wgan_gp" if objective == "wasserstein" else "r1"
    result = short_fit(objective, [reg, "r2"] if reg == "r1" else [reg], "16-mixed", batches=4)
    assert result["finite"], result


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_dcgan_wgan_gp_fits_from_the_scalers_first_scale(precision):
    """A conv-head critic's logits are float16 under 16-mixed: at the GradScaler's first scale
    (2^16 > float16's max) an uncapped penalty recipe makes every penalty NaN at the first step."""
    result = short_fit("wasserstein", ["wgan_gp"], precision, batches=3, batch_size=4, nets="dcgan")
    assert result["finite"], result
    assert result["d_steps"] == 3 and "d/wgan_gp" in result["last"]


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_penalty_under_autocast_close_to_fp32(precision):
    """Same DCGAN critic, inputs and random points: per-sample penalties within tolerance."""
    result = penalty_equivalence(precision, "cpu")
    assert all(v["ok"] for v in result.values()), result


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_penalty_gradient_through_the_recipe_matches_fp32(precision):
    assert penalty_gradients_match(precision, "cpu")["ok"]


@pytest.mark.parametrize("name", ["wgan_gp", "r1", "r2", "dragan"])
def test_scaled_gradient_recipe_is_exact_in_fp32(name):
    """Scaling by 2^k before autograd.grad and unscaling after is exact in float32: the penalty
    and its parameter gradient are those computed without a scaler."""
    D = ToyDiscriminator(members=2, hidden=16, layers=2)
    real, fake = torch.randn(2, 8, 2), torch.randn(2, 8, 2)
    reg = get_regularizer(name)

    def run(scaler):
        D.zero_grad(set_to_none=True)
        g = torch.Generator().manual_seed(0)
        rand = lambda shape: torch.rand(shape, generator=g)  # noqa: E731
        penalty = reg.penalty(PenaltyInputs(D, real, fake, 2, rand=rand, grad_scaler=scaler))
        penalty.sum().backward()
        return penalty.detach(), [p.grad.clone() for p in D.parameters() if p.grad is not None]

    plain, grads = run(None)
    scaled, scaled_grads = run(torch.amp.GradScaler("cpu", init_scale=2.0**12))
    torch.testing.assert_close(scaled, plain, rtol=1e-6, atol=1e-7)
    for a, b in zip(scaled_grads, grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_scaling_keeps_float16_input_gradients_from_underflowing():
    """A critic with tiny slopes: float16 intermediate gradients flush to zero without the scaler;
    with it the norm matches float32."""
    D = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Linear(64, 1))
    with torch.no_grad():
        D[0].weight.mul_(1e-4)
        D[1].weight.mul_(1e-4)
    critic = lambda x: D(x).squeeze(-1)  # noqa: E731
    x = torch.randn(8, 4)
    exact = per_sample_grad_norm(critic, x).detach()
    with torch.autocast("cpu", dtype=torch.float16):
        unscaled = per_sample_grad_norm(critic, x).detach()
        scaled = per_sample_grad_norm(critic, x, grad_scaler=torch.amp.GradScaler("cpu", init_scale=2.0**15))
    assert (unscaled == 0).all()  # underflow
    torch.testing.assert_close(scaled.detach(), exact, rtol=2e-2, atol=0)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("precision", ["32-true", "16-mixed"])
def test_gradient_clipping_acts_on_unscaled_gradients(precision, fused):
    """One D step with SGD(lr=1): the update is the clipped gradient, whose norm is the clip value
    (were it clipped before unscaling, the update would be clip / scale). A fused SGD unscales inside
    its own step, after the clipping hook, unless the module unscales first."""
    clip = 1e-3
    G = ToyGenerator(members=1, hidden=16, layers=2, batch_norm=False)
    D = ToyDiscriminator(members=1, hidden=16, layers=2)
    module = GANModule(
        G,
        D,
        objective="wasserstein",
        regularizers=["wgan_gp"],
        n_critic=2,  # one batch: one D step, no G step
        gradient_clip_val=clip,
        optimizer_d=partial(torch.optim.SGD, lr=1.0, fused=fused),
    )
    before = [p.detach().clone() for p in module.D.parameters()]
    kw = {"precision": precision}
    if precision == "16-mixed":
        kw = {"plugins": [MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=2.0**12))]}
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        log_every_n_steps=1,  # the module logs only on the steps the loggers write
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kw,
    )
    trainer.fit(module, ToyMixtureDataModule("ring8", batch_size=16))
    assert (module.d_steps, module.g_steps) == (1, 0)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(module.D.parameters(), before)))
    assert step.item() == pytest.approx(clip, rel=1e-3)


def test_negative_gradient_clip_is_refused():
    with pytest.raises(ConfigError, match="gradient_clip_val"):
        GANModule(
            ToyGenerator(hidden=8, layers=1), ToyDiscriminator(hidden=8, layers=1), gradient_clip_val=-1.0
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="16-mixed needs CUDA")
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_penalty_under_mixed_precision_equals_fp32_on_cuda(precision):
    result = penalty_equivalence(precision, "cuda")
    assert all(v["ok"] for v in result.values()), result
    assert penalty_gradients_match(precision, "cuda")["ok"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="16-mixed needs CUDA")
def test_fit_under_16_mixed_on_cuda():
    assert short_fit("wasserstein", ["wgan_gp"], "16-mixed", device="cuda", batches=4)["finite"]
