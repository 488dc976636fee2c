"""DDP on CPU (gloo, 2 processes): both ranks end identical, and equal to one process fed both
ranks' batches concatenated.

Why the equivalence is exact: each rank reduces its loss as the mean over its batch of B (per
member), DDP averages the gradients over the 2 ranks, and the mean of two means over B is the mean
over the 2B samples. Every random draw of a step (data, G's noise, WGAN-GP's ε, DRAGAN's α and u)
comes from per-member counter streams keyed by rank (:class:`~gan_lab.seeding.CounterStream`), so
:class:`TwoRanks` below, one
process whose every draw is rank 0's draw followed by rank 1's along the batch dim, sees exactly
the 2B samples that the two ranks see together.

The fast test launches the two processes itself (as torchrun or SLURM do, Lightning's ``ddp``
with processes created externally), once for all configurations; the slow ones use Lightning's
``ddp_spawn`` launcher, one spawn per configuration.
"""

from __future__ import annotations

import os
import socket

import lightning as L
import pytest
import torch
import torch.multiprocessing as mp
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.regularizers import R1
from gan_lab.seeding import CounterStream, run_seeds
from gan_lab.settings import Remedies

WORLD = 2
B = 8  # per rank
STEPS = 4  # D steps (batches)
MEMBERS = 2

# (objective, regularizers, n_critic): non-saturating, WGAN-GP, R1, and lazy R1 (its own step).
# DRAGAN is not among them: its δ = ½ std(x) u uses the batch's std, which a rank takes over its
# own B samples, so DDP DRAGAN is not the single-process DRAGAN on 2B samples (it trains, below).
CONFIGS = {
    "non_saturating": ("non_saturating", [], 1),
    "wgan_gp": ("wasserstein", ["wgan_gp"], 2),
    "r1": ("non_saturating", ["r1"], 1),
    "lazy_r1": ("least_squares", [("r1", 2)], 1),
    # PacGAN's protocol: simultaneous updates over a fixed training set (rank 0's set on every rank,
    # rank r reading slice r of each global batch: the single process reads the global batches)
    "simultaneous_fixed_set": (
        "non_saturating",
        [],
        1,
        {"remedies": Remedies(simultaneous=True), "train_size": 64},
    ),
}
ALL_OBJECTIVES = ["minimax", "non_saturating", "wasserstein", "hinge", "least_squares", "relativistic"]
EVERY_REGULARIZER = {
    **{f"{o}": (o, [], 1) for o in ALL_OBJECTIVES},
    "one_sided_gp": ("wasserstein", ["one_sided_gp"], 2),
    "r2": ("relativistic", ["r2"], 1),
    "dragan_hinge": ("hinge", ["dragan"], 1),
    "clip": ("wasserstein", ["weight_clipping"], 2),
    **CONFIGS,
}


def _regs(names):
    return [R1(weight=1.0, every=r[1]) if isinstance(r, tuple) else r for r in names]


def _extra(config) -> dict:
    """A configuration's module keywords and the data's ``train_size`` (4th entry; none: {})."""
    return config[3] if len(config) > 3 else {}


def make_module(config, cls=GANModule):
    objective, regs, n_critic = config[:3]
    kw = {k: v for k, v in _extra(config).items() if k != "train_size"}
    G = ToyGenerator(members=MEMBERS, hidden=16, layers=2, batch_norm=False)
    D = ToyDiscriminator(members=MEMBERS, hidden=16, layers=2)
    return cls(G, D, objective=objective, regularizers=_regs(regs), n_critic=n_critic, seed=7, **kw)


def make_data(config, batch_size: int = B) -> ToyMixtureDataModule:
    return ToyMixtureDataModule("ring8", batch_size=batch_size, train_size=_extra(config).get("train_size"))


class TwoRanks(GANModule):
    """One process drawing, at every draw, rank 0's numbers followed by rank 1's (batch dim): each
    rank's counter-based streams keyed by its rank, the counters advancing in lockstep."""

    def _rank_streams(self, stream: str) -> list[CounterStream]:
        if not hasattr(self, "_two_rank_streams"):
            self._two_rank_streams = {}
        if stream not in self._two_rank_streams:
            seeds = run_seeds(self.seed, self.members or 1)
            self._two_rank_streams[stream] = [CounterStream(seeds, stream) for _ in range(WORLD)]
        return self._two_rank_streams[stream]

    def sample_noise(self, batch_size: int) -> torch.Tensor:
        half = batch_size // WORLD
        parts = [
            s.normal((half, self.G.z_dim), "cpu", rank=r) for r, s in enumerate(self._rank_streams("noise"))
        ]
        z = torch.cat(parts, dim=1)
        return z if self.members is not None else z[0]

    def sample_uniform(self, shape):
        dim = self.batch_ndim - 1
        half = list(shape)
        half[dim] //= WORLD
        rest = half[dim:]
        parts = [s.uniform(rest, "cpu", rank=r) for r, s in enumerate(self._rank_streams("penalty"))]
        parts = parts if self.members is not None else [p[0] for p in parts]
        return torch.cat(parts, dim=dim)


class TwoRanksData(ToyMixtureDataModule):
    """Real batches ``(E, 2B, 2)``: rank 0's ``(E, B, 2)`` then rank 1's."""

    def sample(self, device):
        if not hasattr(self, "_rank_streams"):
            self._rank_streams = [
                CounterStream(run_seeds(self.seed, self.members), "data") for _ in range(WORLD)
            ]
        n = self.batch_size * self.mixture.words_per_sample
        return torch.cat(
            [self.mixture.from_words(s.words(n, "cpu", rank=r)) for r, s in enumerate(self._rank_streams)],
            dim=1,
        )


def trainer_kwargs():
    return dict(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def reference_state(config) -> dict[str, torch.Tensor]:
    """Single process, both ranks' batches concatenated."""
    module = make_module(config, TwoRanks)
    fixed = _extra(config).get("train_size") is not None
    data = make_data(config, WORLD * B) if fixed else TwoRanksData("ring8", batch_size=B)
    L.Trainer(devices=1, **trainer_kwargs()).fit(module, data)
    return {k: v.clone() for k, v in module.state_dict().items()}


class SaveState(Callback):
    """Each rank writes its parameters (and counters) at the end of training."""

    def __init__(self, folder: str, tag: str) -> None:
        self.folder, self.tag = folder, tag

    def on_train_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        counters = (pl_module.d_steps, pl_module.g_steps)
        torch.save((state, counters), os.path.join(self.folder, f"{self.tag}-rank{trainer.global_rank}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _external_worker(rank: int, port: int, folder: str, names: list[str], table: dict) -> None:
    """One of the two processes, launched by the test as torchrun or SLURM would: Lightning's DDP
    then creates no processes (``LOCAL_RANK`` is set) and joins the gloo group."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), NODE_RANK="0", WORLD_SIZE="2"
    )
    torch.set_num_threads(1)
    for name in names:
        module = make_module(table[name])
        trainer = L.Trainer(
            devices=WORLD,
            strategy=DDPStrategy(find_unused_parameters=True, process_group_backend="gloo"),
            callbacks=[SaveState(folder, name)],
            **trainer_kwargs(),
        )
        trainer.fit(module, make_data(table[name]))


def run_external(folder, names, table) -> None:
    mp.start_processes(
        _external_worker, args=(_free_port(), str(folder), names, table), nprocs=WORLD, start_method="spawn"
    )


def assert_ranks_identical_and_match(folder, name, reference=None):
    (s0, c0), (s1, c1) = (torch.load(folder / f"{name}-rank{r}.pt") for r in range(WORLD))
    assert c0 == c1 and c0[0] == STEPS
    assert s0.keys() == s1.keys()
    for k in s0:
        assert torch.equal(s0[k], s1[k]), f"{name}: {k} differs between ranks"
        assert torch.isfinite(s0[k]).all(), f"{name}: {k} not finite"
    if reference is not None:
        init = make_module(CONFIGS[name]).state_dict()
        for k in s0:
            if k.endswith("weight"):  # (a critic's last bias may get no gradient: Wasserstein)
                assert not torch.equal(s0[k], init[k]), f"{name}: {k} did not train"
            torch.testing.assert_close(s0[k], reference[k], rtol=0, atol=1e-5, msg=f"{name}: {k}")


def test_ddp_equals_single_process_on_concatenated_batch(tmp_path):
    names = list(CONFIGS)
    run_external(tmp_path, names, CONFIGS)
    for name in names:
        assert_ranks_identical_and_match(tmp_path, name, reference_state(CONFIGS[name]))


def test_reference_differs_from_one_rank_alone():
    """Guard on the test itself: the concatenated run is not simply rank 0's run."""
    alone = make_module(CONFIGS["wgan_gp"])
    L.Trainer(devices=1, **trainer_kwargs()).fit(alone, ToyMixtureDataModule("ring8", batch_size=B))
    both = reference_state(CONFIGS["wgan_gp"])
    assert not torch.allclose(alone.state_dict()["D.net.0.weight"], both["D.net.0.weight"], atol=1e-5)


@pytest.mark.slow
def test_every_objective_and_regularizer_trains_under_ddp(tmp_path):
    names = [n for n in EVERY_REGULARIZER if n not in CONFIGS]
    run_external(tmp_path, names, EVERY_REGULARIZER)
    for name in names:
        assert_ranks_identical_and_match(tmp_path, name)


@pytest.mark.parametrize("name", ["non_saturating", "wgan_gp", "r1"])  # ~6 s each on 2 cores
def test_ddp_spawn_equals_single_process_on_concatenated_batch(tmp_path, name):
    module = make_module(CONFIGS[name])
    trainer = L.Trainer(
        devices=WORLD,
        strategy="ddp_spawn_find_unused_parameters_true",
        callbacks=[SaveState(str(tmp_path), name)],
        **trainer_kwargs(),
    )
    trainer.fit(module, ToyMixtureDataModule("ring8", batch_size=B))
    assert_ranks_identical_and_match(tmp_path, name, reference_state(CONFIGS[name]))


# ----------------------------------------------------------------------------------------------
# Refusals (no processes started: the checks run on the Trainer's configuration)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_ddp_without_find_unused_parameters_is_refused(strategy):
    module = make_module(CONFIGS["non_saturating"])
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, logger=False)
    with pytest.raises(ConfigError, match=f"strategy='{strategy}_find_unused_parameters_true'") as e:
        module.check_trainer(trainer)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("reg", ["wgan_gp", "r1", "dragan"])
def test_sync_batchnorm_with_gradient_penalty_is_refused(reg):
    module = make_module(("wasserstein", [reg], 1))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn_find_unused_parameters_true",
        sync_batchnorm=True,
        logger=False,
    )
    with pytest.raises(
        ConfigError, match=f"SyncBatchNorm cannot be combined with the gradient penalty '{reg}'"
    ) as e:
        module.check_trainer(trainer)
    assert "\n" not in str(e.value)


def test_sync_batchnorm_inside_D_with_gradient_penalty_is_refused():
    module = make_module(("wasserstein", ["wgan_gp"], 1))
    module.D.net.insert(1, torch.nn.SyncBatchNorm(16))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False)
    with pytest.raises(ConfigError, match="SyncBatchNorm"):
        module.check_trainer(trainer)


def test_sync_batchnorm_without_penalty_and_find_unused_ddp_pass_the_check():
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_find_unused_parameters_true",
        sync_batchnorm=True,
        logger=False,
    )
    make_module(CONFIGS["non_saturating"]).check_trainer(trainer)
