"""DivergenceGuard: a non-finite gradient never reaches the weights; skip, count, or stop."""

import functools
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins import MixedPrecision
from torch import nn

from gan_lab.callbacks.guard import DivergenceGuard, TrainingDiverged
from gan_lab.data.toy import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.losses import NonSaturating
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator

NAN = float("nan")


class NaNAt(NonSaturating):
    """Non-saturating losses, NaN at the listed D / G steps (0-based). With ``keep_losses`` it
    also leaves the loss in ``module.last_losses`` before the step, as the module would."""

    def __init__(self, d_bad=(), g_bad=(), keep_losses=False) -> None:
        self.d_bad, self.g_bad, self.keep_losses = set(d_bad), set(g_bad), keep_losses
        self.d_calls = self.g_calls = 0
        self.module = None

    def d_loss(self, real_logits, fake_logits):
        loss = super().d_loss(real_logits, fake_logits)
        if self.d_calls in self.d_bad:
            loss = loss * NAN
        self.d_calls += 1
        if self.keep_losses:
            self.module.last_losses = {"d/loss": loss.detach().mean(), "d/r1": torch.tensor(0.5)}
        return loss

    def g_loss(self, fake_logits, real_logits=None):
        loss = super().g_loss(fake_logits, real_logits)
        if self.g_calls in self.g_bad:
            loss = loss * NAN
        self.g_calls += 1
        return loss


class Probe(Callback):
    """D's parameters and opt_d's Adam step counts at the start and end of every batch."""

    def __init__(self) -> None:
        self.start, self.end = {}, {}

    @staticmethod
    def _snap(trainer, pl_module):
        opt_d = trainer.optimizers[1]
        params = [p.detach().clone() for p in pl_module.D.parameters()]
        steps = [int(opt_d.state[p]["step"]) if p in opt_d.state else 0 for p in pl_module.D.parameters()]
        return params, steps

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.start[batch_idx] = self._snap(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.end[batch_idx] = self._snap(trainer, pl_module)


def fit(tmp_path, objective, callbacks, max_g_steps=8, optimizer=None, **trainer_kwargs):
    model = GANModule(
        ToyGenerator(members=2, hidden=8, layers=2),
        ToyDiscriminator(members=2, hidden=8, layers=2),
        objective=objective,
        max_g_steps=max_g_steps,
        optimizer_g=optimizer,
        optimizer_d=optimizer,
    )
    objective.module = model
    trainer = L.Trainer(
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        max_steps=-1,
        callbacks=callbacks,
        **trainer_kwargs,
    )
    trainer.fit(model, ToyMixtureDataModule(batch_size=16))
    return model, trainer


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_skip_leaves_weights_and_adam_state_untouched_and_training_goes_on(tmp_path):
    guard, probe = DivergenceGuard("skip"), Probe()
    model, trainer = fit(tmp_path, NaNAt(d_bad=[3]), [guard, probe])

    params, steps = probe.start[3]
    params_after, steps_after = probe.end[3]
    assert _same(params, params_after)  # bitwise: the update was dropped
    assert steps == steps_after == [3] * len(steps)  # Adam's step count not advanced
    assert not _same(probe.start[2][0], probe.end[2][0])  # a normal step does change D
    assert probe.end[4][1] == [4] * len(steps)  # and Adam resumes counting

    assert model.g_steps == 8  # training went on to the end
    assert guard.skipped == {"D": 1}
    assert [(e["player"], e["step"], e["action"]) for e in guard.events] == [("D", 3, "skip")]
    assert float(trainer.callback_metrics["guard/skipped"]) == 1.0
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("fused", [False, True])
def test_under_a_grad_scaler_the_scaler_skips_and_the_guard_counts(tmp_path, fused):
    """16-mixed (a CPU GradScaler): the NaN step is dropped by the scaler, which lowers its scale;
    the guard counts it and leaves the gradients, so that a fused Adam's scaler finds its inf."""
    guard, probe = DivergenceGuard("skip"), Probe()
    scaler = torch.amp.GradScaler("cpu")
    adam = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999), fused=fused)
    plugins = [MixedPrecision("16-mixed", "cpu", scaler)]
    model, _ = fit(tmp_path, NaNAt(d_bad=[3]), [guard, probe], optimizer=adam, plugins=plugins)

    params, steps = probe.start[3]
    params_after, steps_after = probe.end[3]
    assert _same(params, params_after) and steps == steps_after  # the update was dropped
    assert not _same(probe.start[2][0], probe.end[2][0])
    assert model.g_steps == 8 and guard.skipped == {"D": 1}
    assert scaler.get_scale() == 2.0**15  # the scaler saw the inf: 2^16 halved once
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_scattered_skips_do_not_count_as_consecutive(tmp_path):
    guard = DivergenceGuard("skip", max_consecutive=2)
    model, _ = fit(tmp_path, NaNAt(d_bad=[1, 3, 5], g_bad=[2]), [guard])
    assert model.g_steps == 8
    assert guard.skipped == {"D": 3, "G": 1}


def test_consecutive_skips_raise(tmp_path):
    guard = DivergenceGuard("skip", max_consecutive=3)
    with pytest.raises(TrainingDiverged) as info:
        fit(tmp_path, NaNAt(d_bad=range(2, 100)), [guard])
    msg = str(info.value)
    assert "D's update at d_steps=4" in msg and "3 consecutive D updates skipped" in msg
    assert "d_steps=2..4" in msg and "non-finite loss terms d/loss=nan" in msg
    assert "last good checkpoint: no checkpoint yet" in msg
    assert guard.skipped == {"D": 3}


class BytesAtStart(Callback):
    """The bytes of every file in a folder when batch ``k`` starts."""

    def __init__(self, folder, k) -> None:
        self.folder, self.k, self.files = folder, k, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.k:
            self.files = {p.name: p.read_bytes() for p in sorted(self.folder.iterdir())}


def test_stop_names_step_player_and_checkpoint_and_saves_nothing(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    # Saves every 2 batches (2 optimizer steps per batch), and would also save on an exception.
    ckpt = ModelCheckpoint(
        ckpt_dir, every_n_train_steps=4, save_top_k=-1, save_last=True, save_on_exception=True
    )
    snapshot = BytesAtStart(ckpt_dir, k=5)
    with pytest.raises(TrainingDiverged) as info:
        fit(tmp_path, NaNAt(g_bad=[5]), [DivergenceGuard("stop"), snapshot, ckpt])
    msg = str(info.value)
    assert "in G's update at g_steps=5 (policy 'stop')" in msg and "g/loss=nan" in msg
    assert f"last good checkpoint: {ckpt_dir / 'last.ckpt'}" in msg
    assert "last.ckpt" in snapshot.files
    after = {p.name: p.read_bytes() for p in sorted(ckpt_dir.iterdir())}
    assert after == snapshot.files  # no new file, last.ckpt bitwise unchanged
    saved = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert saved["gan_lab"]["g_steps"] == 4


def test_stop_names_the_non_finite_loss_terms_when_the_module_keeps_them(tmp_path):
    with pytest.raises(
        TrainingDiverged, match=r"non-finite loss terms d/loss=nan in D's update at d_steps=2"
    ):
        fit(tmp_path, NaNAt(d_bad=[2], keep_losses=True), [DivergenceGuard("stop")])


# ----------------------------------------------------------------------------------------------
# Pieces, without a Trainer
# ----------------------------------------------------------------------------------------------


def _fake(scaler=None, losses=None):
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    logged = []
    module = SimpleNamespace(G=G, D=D, d_steps=7, g_steps=3, log_dict=lambda d, **k: logged.append(d))
    if losses is not None:
        module.last_losses = losses
    trainer = SimpleNamespace(
        optimizers=[opt_g, opt_d], precision_plugin=SimpleNamespace(scaler=scaler), checkpoint_callback=None
    )
    return trainer, module, opt_g, opt_d, logged


def _bad_grads(net):
    for p in net.parameters():
        p.grad = torch.full_like(p, 1.0)
    next(net.parameters()).grad[0, 0] = float("inf")


def test_player_by_parameters_and_by_position():
    trainer, module, opt_g, opt_d, _ = _fake()
    assert DivergenceGuard.player_of(trainer, module, opt_d) == "D"
    assert DivergenceGuard.player_of(trainer, module, opt_g) == "G"
    plain = SimpleNamespace()
    assert DivergenceGuard.player_of(trainer, plain, opt_g) == "G"
    assert DivergenceGuard.player_of(trainer, plain, opt_d) == "D"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_grads_finite_detects_every_non_finite_value(value):
    net = nn.Linear(3, 3)
    opt = torch.optim.SGD(net.parameters())
    assert DivergenceGuard.grads_finite(opt)  # no gradients at all
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    assert DivergenceGuard.grads_finite(opt)
    net.bias.grad[1] = value
    assert not DivergenceGuard.grads_finite(opt)


def test_skip_clears_the_gradients_and_logs():
    trainer, module, _, opt_d, logged = _fake()
    guard = DivergenceGuard("skip")
    _bad_grads(module.D)
    guard.on_before_optimizer_step(trainer, module, opt_d)
    assert all(p.grad is None for p in module.D.parameters())
    assert logged == [{"guard/skipped": 1.0, "guard/consecutive": 1.0}]


def test_under_a_grad_scaler_stop_waits_for_a_non_finite_loss():
    trainer, module, _, opt_d, _ = _fake(scaler=object(), losses={"d/loss": torch.tensor(1.0)})
    guard = DivergenceGuard("stop", max_consecutive=2)
    _bad_grads(module.D)
    guard.on_before_optimizer_step(trainer, module, opt_d)  # an fp16 overflow: the scaler's business
    assert guard.skipped == {"D": 1}
    assert all(p.grad is not None for p in module.D.parameters())  # left for the scaler's inf check
    module.last_losses = {"d/loss": torch.tensor(float("nan")), "g/loss": torch.tensor(float("nan"))}
    module.d_steps += 1
    _bad_grads(module.D)
    with pytest.raises(
        TrainingDiverged, match=r"non-finite loss terms d/loss=nan in D's update at d_steps=8 \("
    ):
        guard.on_before_optimizer_step(trainer, module, opt_d)


def test_per_sample_loss_terms_are_named_by_their_mean():
    """The module keeps the objective's terms per sample, (E, B): one NaN sample names the term,
    with the mean's value; finite terms and G's terms are not named."""
    nan, inf = float("nan"), float("inf")
    losses = {
        "d/loss": torch.tensor([[1.0, nan], [2.0, 3.0]]),
        "d/r1": torch.tensor(0.5),
        "d/other": torch.tensor([[1.0, inf]]),
        "g/loss": torch.tensor([[nan]]),
    }
    _, module, _, _, _ = _fake(losses=losses)
    assert DivergenceGuard.nonfinite_terms(module, "D") == ["d/loss=nan", "d/other=inf"]


def test_under_a_grad_scaler_consecutive_overflows_raise():
    trainer, module, _, opt_d, _ = _fake(scaler=object())
    guard = DivergenceGuard("stop", max_consecutive=2)
    _bad_grads(module.D)
    guard.on_before_optimizer_step(trainer, module, opt_d)
    module.d_steps += 1
    _bad_grads(module.D)
    with pytest.raises(TrainingDiverged, match="2 consecutive D updates skipped"):
        guard.on_before_optimizer_step(trainer, module, opt_d)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"policy": "pause"}, "valid policies: skip, stop"), ({"max_consecutive": 0}, ">= 1")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DivergenceGuard(**kwargs)
