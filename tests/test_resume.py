"""Resume gives the same numbers as not stopping: fit 2N == fit N, stop, resume, fit N more."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from gan_lab.data import ToyMixtureDataModule
from gan_lab.evaluators import ModeCoverageEvaluator
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.settings import EMA, Remedies

N = 6


def make_module(max_g_steps, **kw):
    G = ToyGenerator(members=3, hidden=16, layers=2)
    D = ToyDiscriminator(members=3, hidden=16, layers=2)
    return GANModule(G, D, max_g_steps=max_g_steps, ema=EMA(beta=0.9), seed=3, **kw)


def fit(module, ckpt_dir, ckpt_path=None):
    L.seed_everything(0)
    evaluator = ModeCoverageEvaluator(every_n_g_steps=2, n_samples=200, plot=False)
    trainer = L.Trainer(
        max_steps=-1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True), evaluator],
    )
    trainer.fit(module, ToyMixtureDataModule("ring8", batch_size=32), ckpt_path=ckpt_path)
    return trainer, evaluator


def assert_same_state(a: GANModule, b: GANModule, ta, tb):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for oa, ob in zip(ta.optimizers, tb.optimizers):
        for (_, x), (_, y) in zip(oa.state_dict()["state"].items(), ob.state_dict()["state"].items()):
            for key in x:
                assert torch.equal(torch.as_tensor(x[key]), torch.as_tensor(y[key])), key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"objective": "wasserstein", "regularizers": ["wgan_gp"], "n_critic": 3},  # random ε each step
        {"objective": "non_saturating", "regularizers": [{"name": "r1", "every": 2}]},
    ],
    ids=["wgan_gp_ncritic3", "lazy_r1"],
)
def test_resume_equals_uninterrupted(tmp_path, kwargs):
    from gan_lab.regularizers import R1

    regs = [R1(weight=1.0, every=2) if isinstance(r, dict) else r for r in kwargs.get("regularizers", [])]
    kwargs = {**kwargs, "regularizers": regs}

    full = make_module(2 * N, **kwargs)
    t_full, ev_full = fit(full, tmp_path / "full")

    first = make_module(N, **kwargs)
    fit(first, tmp_path / "split")
    assert first.g_steps == N
    resumed = make_module(2 * N, **kwargs)
    t_res, ev_res = fit(resumed, tmp_path / "split2", ckpt_path=str(tmp_path / "split" / "last.ckpt"))

    assert (resumed.d_steps, resumed.g_steps) == (full.d_steps, full.g_steps)
    assert_same_state(full, resumed, t_full, t_res)
    # evaluator history survives the stop too (repr: NaN == NaN for undefined KL/JS)
    assert repr(ev_res.history) == repr(ev_full.history)


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    module = make_module(2, objective="hinge")
    fit(module, tmp_path)
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    state = ckpt["gan_lab"]
    assert state["g_steps"] == 2 and state["d_steps"] == 2
    # the streams' state is their counters: 2 steps x (D's and G's 32 x 2 normals), no penalty drawn
    assert (state["noise_counter"], state["penalty_counter"]) == (2 * 2 * 32 * 2, 0)
    assert {"torch", "python", "numpy"} <= set(state["rng"])
    assert any(k.startswith("G_ema.") for k in ckpt["state_dict"])
    assert len(ckpt["optimizer_states"]) == 2
    # 2 batches x 32 samples x (a component and 2 normals) of every member's data stream
    assert "ToyMixtureDataModule" in ckpt and ckpt["ToyMixtureDataModule"]["data_counter"] == 2 * 32 * 3


def test_fixed_training_set_resumes_mid_epoch_exactly(tmp_path):
    """PacGAN's protocol: a fixed set of 10 packs of 2, 3 batches of 3 packs an epoch; stopping after
    4 G steps (one batch into the second epoch) and resuming gives the uninterrupted run's weights."""

    def data():
        return ToyMixtureDataModule("ring8", batch_size=3, train_size=10)

    def module(steps):
        G = ToyGenerator(members=2, hidden=8, layers=2)
        D = ToyDiscriminator(members=2, hidden=8, layers=2, in_dim=4, activation="maxout", init="normal")
        return GANModule(G, D, max_g_steps=steps, seed=1, remedies=Remedies(pack=2))

    def run(m, ckpt_dir, ckpt_path=None):
        L.seed_everything(0)
        trainer = L.Trainer(
            max_steps=-1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True)],
        )
        trainer.fit(m, data(), ckpt_path=ckpt_path)
        return trainer

    full = module(8)
    t_full = run(full, tmp_path / "full")
    first = module(4)  # 4 = one epoch of 3 batches and one batch into the second
    run(first, tmp_path / "split")
    resumed = module(8)
    t_res = run(resumed, tmp_path / "split2", ckpt_path=str(tmp_path / "split" / "last.ckpt"))
    assert resumed.g_steps == full.g_steps == 8
    assert_same_state(full, resumed, t_full, t_res)
