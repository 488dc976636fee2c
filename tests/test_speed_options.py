"""GANModule's speed: ``channels_last``, ``compile`` and foreach / fused Adam change speed, not the
training; a training step makes no host synchronisation."""

import copy
import functools
import os
import pickle
import traceback

import lightning as L
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.bench import _image_datamodule
from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lab.regularizers import R1
from gan_lab.settings import EMA, Speed


def trainer(batches: int, callbacks=()) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=batches,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )


def dcgan_nets():
    return DCGANGenerator(z_dim=8, ngf=4, seed=3), DCGANDiscriminator(ndf=4, seed=3)


def toy_nets():
    return ToyGenerator(members=2, hidden=16, layers=2), ToyDiscriminator(members=2, hidden=16, layers=2)


def params(module: GANModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_channels_last_trains_the_same_dcgan_and_converts_weights_and_inputs():
    seen = []

    def fit(channels_last: bool) -> GANModule:
        module = GANModule(*dcgan_nets(), objective="hinge", speed=Speed(channels_last=channels_last))
        hook = module.D.net[0].register_forward_pre_hook(
            lambda m, args: seen.append(
                (channels_last, args[0].is_contiguous(memory_format=torch.channels_last))
            )
        )
        trainer(3).fit(module, _image_datamodule(batch=4, steps=3))
        hook.remove()
        return module

    plain, fast = fit(False), fit(True)
    assert fast.d_steps == plain.d_steps == 3 and fast.g_steps == 3
    convs = [
        m for net in (fast.G, fast.D) for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)
    ]
    assert len(convs) == 7
    for conv in convs:
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.D.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert {cl for cl, _ in seen} == {False, True}
    # every D input (real and fake batches) is channels_last in the fast run, none in the plain one
    assert all(fmt for cl, fmt in seen if cl) and not any(fmt for cl, fmt in seen if not cl)
    a, b = params(plain), params(fast)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4, msg=k)


def test_channels_last_leaves_toy_tensors_alone():
    module = GANModule(*toy_nets(), speed=Speed(channels_last=True))
    before = {k: v.stride() for k, v in module.state_dict().items()}
    module.setup("fit")
    assert {k: v.stride() for k, v in module.state_dict().items()} == before


def test_compile_keeps_state_dict_keys_and_pickles():
    plain = GANModule(*toy_nets(), ema=EMA(beta=0.9))
    compiled = GANModule(*toy_nets(), ema=EMA(beta=0.9), speed=Speed(compile=True))
    G, D = compiled.training_nets()  # the lazily built compiled callables (compiles at first call)
    assert G is not compiled.G and D is not compiled.D
    assert compiled.training_nets() == (G, D)  # built once
    assert compiled.state_dict().keys() == plain.state_dict().keys()
    assert not any("_orig_mod" in k for k in compiled.state_dict())
    assert not any(type(m).__name__ == "OptimizedModule" for m in compiled.modules())
    # the penalties' D is the plain one; the objective's is the compiled one
    assert compiled.critic() is D and compiled.critic(compiled=False) is compiled.D
    for clone in (copy.deepcopy(compiled), pickle.loads(pickle.dumps(compiled))):
        assert clone._compiled.G is None and clone.state_dict().keys() == plain.state_dict().keys()


def test_compile_modes_reach_torch_compile_and_survive_pickling(monkeypatch):
    """``speed.compile="reduce-overhead"`` (CUDA graphs) is passed to torch.compile for G and D and kept
    through pickling; a mode torch.compile does not know is one ConfigError at construction."""
    seen = []
    monkeypatch.setattr(torch, "compile", lambda net, mode=None: seen.append(mode) or net)
    module = GANModule(*toy_nets(), speed=Speed(compile="reduce-overhead"))
    assert module.hparams["speed"]["compile"] == "reduce-overhead" and module._compiled.cudagraphs
    module.training_nets()
    assert seen == ["reduce-overhead", "reduce-overhead"]
    clone = pickle.loads(pickle.dumps(module))
    assert clone._compiled.mode == "reduce-overhead" and clone._compiled.G is None
    assert GANModule(*toy_nets(), speed=Speed(compile=True))._compiled.mode == "default"
    assert not GANModule(*toy_nets(), speed=Speed(compile="max-autotune-no-cudagraphs"))._compiled.cudagraphs
    with pytest.raises(ConfigError, match="unknown compile mode 'fast'"):
        Speed(compile="fast")


@functools.cache
def compile_unavailable() -> str | None:
    """Why torch.compile cannot run here (no C++ compiler, ...), or None when it can."""
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.ones(3))
    except Exception as e:  # any backend failure (no C++ compiler, ...) means: skip
        return f"torch.compile does not work on this machine: {type(e).__name__}: {str(e)[:200]}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("mode", [True, "reduce-overhead"])
def test_compile_trains_like_eager_with_a_gradient_penalty(mode):
    reason = compile_unavailable()
    if reason:
        pytest.skip(reason)

    def fit(compile: bool | str) -> GANModule:
        module = GANModule(
            *toy_nets(), objective="wasserstein", regularizers=["wgan_gp"], speed=Speed(compile=compile)
        )
        trainer(3).fit(module, ToyMixtureDataModule("ring8", batch_size=16))
        return module

    eager, compiled = fit(False), fit(mode)
    assert compiled._compiled.G is not None  # the compiled nets were used
    assert compiled.d_steps == eager.d_steps == 3 and compiled.g_steps == 3
    a, b = params(eager), params(compiled)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=1e-3, msg=k)


@pytest.mark.parametrize("implementation", [{"foreach": True}, {"fused": True}])
def test_foreach_and_fused_adam_train_as_the_for_loop_adam(implementation):
    """Adam's multi-tensor (foreach) and fused kernels are speed options of the same update: an
    ensemble trained 6 steps with WGAN-GP ends where the for-loop Adam ends (float rounding)."""

    def fit(**adam) -> GANModule:
        opt = functools.partial(torch.optim.Adam, lr=1e-3, betas=(0.5, 0.9), **adam)
        module = GANModule(
            *toy_nets(), objective="wasserstein", regularizers=["wgan_gp"], optimizer_g=opt, optimizer_d=opt
        )
        trainer(6).fit(module, ToyMixtureDataModule("ring8", batch_size=8, steps_per_epoch=6))
        return module

    reference, fast = params(fit(foreach=False)), params(fit(**implementation))
    initial = params(GANModule(*toy_nets()))  # the same seeds: the weights before training
    assert reference.keys() == fast.keys() == initial.keys()
    for name, value in reference.items():
        torch.testing.assert_close(fast[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert any(
        not torch.allclose(reference[k], initial[k], atol=1e-4) for k in initial if k.endswith("weight")
    )


class HostSyncs(TorchDispatchMode):
    """Records every op that copies a tensor's value to the host (``.item()``, ``bool(t)``,
    ``nonzero``: a host synchronisation on a GPU), with the gan_lab line that caused it. Reads of
    the optimizers' own CPU step counters (torch.optim) are left out: they never leave the host."""

    SYNC_OPS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.SYNC_OPS:
            stack = traceback.extract_stack()
            if not any(f"torch{os.sep}optim{os.sep}" in frame.filename for frame in stack):
                ours = [
                    f"{frame.name}:{frame.lineno}" for frame in stack if f"gan_lab{os.sep}" in frame.filename
                ]
                self.calls.append(f"{func} from {ours[-1] if ours else '?'}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "config",
    [
        {"objective": "non_saturating"},
        {"objective": "wasserstein", "regularizers": ["wgan_gp"], "n_critic": 2},
        {"objective": "relativistic", "regularizers": ["dragan", "r1"], "ema": EMA(beta=0.99)},
        {"objective": "hinge", "regularizers": [R1(weight=1.0, every=2)], "gradient_clip_val": 1.0},
    ],
)
def test_training_steps_make_no_host_sync(config):
    """Between the loggers' steps, a training step only enqueues work: no ``.item()``, no
    ``bool(tensor)``, no ``nonzero`` (each stalls a GPU's launch queue)."""
    module = GANModule(*toy_nets(), **config)
    syncs = HostSyncs()
    step = module.training_step

    def watched(*args, **kwargs):
        with syncs:
            return step(*args, **kwargs)

    module.training_step = watched
    fit = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=6,
        log_every_n_steps=1000,  # no logging step in the window: logging is the loggers' business
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    fit.fit(module, ToyMixtureDataModule("ring8", batch_size=8, steps_per_epoch=6))
    assert module.d_steps == 6
    assert syncs.calls == []
