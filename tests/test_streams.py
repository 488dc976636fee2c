"""The counter-based per-member streams of :mod:`gan_lab.seeding`: the hash against a pure-Python
reference, the uniforms / normals / integers against scipy.stats (fixed keys: deterministic), the
counter as the whole state (resume, ranks), member k == the single run with seed s + k after 50
training steps, and the ops dispatched per training step not depending on the ensemble size."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from scipy import stats
from tiny_fit import quiet_trainer
from torch.utils._python_dispatch import TorchDispatchMode

from gan_lab.data import ToyMixtureDataModule
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator, member
from gan_lab.seeding import (
    CounterStream,
    RunStreams,
    below_from_words,
    counter_words,
    mix32,
    normal_from_words,
    run_seeds,
    splitmix64,
    stream_keys,
    uniform_from_words,
)

M32 = 0xFFFF_FFFF


def prospector32(x: int) -> int:
    """skeeto/hash-prospector's prospector32, written from its published definition."""
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & M32
    x ^= x >> 12
    x = (x * 0x297A2D39) & M32
    return x ^ (x >> 15)


def reference_word(key: tuple[int, int], c: int) -> int:
    k0, k1 = key
    return prospector32(prospector32((c & M32) ^ k0) ^ (c >> 32) ^ k1)


def keys_tensor(keys: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.tensor(keys, dtype=torch.int64)
    return k[:, :1], k[:, 1:]


# ----------------------------------------------------------------------------------------------
# The hash
# ----------------------------------------------------------------------------------------------


def test_splitmix64_matches_the_published_first_output():
    # SplitMix64 seeded 0: its first output is 0xe220a8397b1dcdaf (the reference C implementation)
    assert splitmix64(0) == 0xE220A8397B1DCDAF


def test_mix32_equals_prospector32_and_is_a_bijection():
    rand = torch.randint(0, 2**32, (500,), generator=torch.Generator().manual_seed(0)).tolist()
    xs = [0, 1, 2, 0x7FFF_FFFF, 0x8000_0000, M32, *rand]
    assert mix32(torch.tensor(xs)).tolist() == [prospector32(x) for x in xs]
    out = mix32(torch.arange(1 << 18))
    assert out.unique().numel() == 1 << 18 and int(out.min()) >= 0 and int(out.max()) <= M32


def test_counter_words_equal_the_formula_also_past_2_to_the_32():
    keys = stream_keys([3, 4], "noise", rank=1)
    for start in (0, 2**32 - 3):  # the second crosses into the high word of the counter
        words = counter_words(keys_tensor(keys), start, 6)
        expected = [[reference_word(k, start + i) for i in range(6)] for k in keys]
        assert words.tolist() == expected


def test_keys_separate_members_streams_and_ranks_and_member_k_is_seed_plus_k():
    ens = stream_keys(run_seeds(10, 4), "data")
    assert ens[2] == stream_keys([12], "data")[0]  # member k == the single run with seed 10 + k
    every = [
        stream_keys([s], st, r)[0] for s in (10, 11) for st in ("data", "noise", "penalty") for r in (0, 1)
    ]
    assert len(set(every)) == len(every)
    assert all(0 <= k0 <= M32 and 0 <= k1 <= M32 for k0, k1 in every)


# ----------------------------------------------------------------------------------------------
# The distributions (fixed keys: the statistics are deterministic)
# ----------------------------------------------------------------------------------------------

N = 200_000


def words(n: int = N, seed: int = 0, stream: str = "noise", members: int = 1) -> torch.Tensor:
    return CounterStream(run_seeds(seed, members), stream).words(n, "cpu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniforms_pass_kolmogorov_smirnov_and_stay_below_one(dtype):
    u = uniform_from_words(words(), dtype)
    assert u.dtype == dtype and u.min() >= 0 and u.max() < 1
    assert stats.kstest(u.double().numpy().ravel(), "uniform").pvalue > 0.01


def test_normals_match_moments_and_kolmogorov_smirnov():
    z = normal_from_words(words(), torch.float64).numpy().ravel()
    se = 1 / np.sqrt(N)
    assert abs(z.mean()) < 4 * se
    assert abs(z.var() - 1) < 4 * np.sqrt(2) * se
    assert abs(stats.skew(z)) < 4 * np.sqrt(6) * se
    assert abs(stats.kurtosis(z)) < 4 * np.sqrt(24) * se
    assert stats.kstest(z, "norm").pvalue > 0.01
    z32 = normal_from_words(words(), torch.float32)  # the training dtype: the float64 values rounded
    assert z32.dtype == torch.float32 and torch.equal(z32, torch.from_numpy(z).float().view(1, -1))


def test_integers_below_k_are_uniform_by_chi_square():
    counts = torch.bincount(below_from_words(words(), 25).ravel(), minlength=25).numpy()
    assert counts.sum() == N and stats.chisquare(counts).pvalue > 0.01


def test_members_and_neighbouring_counters_are_uncorrelated():
    u = uniform_from_words(words(N, seed=0, members=4), torch.float64).numpy()  # (4, N)
    bound = 4 / np.sqrt(N)
    assert np.abs(np.corrcoef(u)[np.triu_indices(4, 1)]).max() < bound  # members (seeds 0..3)
    for lag in (1, 2, 7):
        assert abs(np.corrcoef(u[0, :-lag], u[0, lag:])[0, 1]) < bound


# ----------------------------------------------------------------------------------------------
# The counter is the state
# ----------------------------------------------------------------------------------------------


def test_draws_in_pieces_equal_one_draw_and_the_counter_counts_numbers():
    a, b = CounterStream([1, 2], "noise"), CounterStream([1, 2], "noise")
    pieces = torch.cat([a.normal((5,), "cpu"), a.normal((3, 4), "cpu").flatten(1)], dim=1)
    assert a.counter == 17 and torch.equal(pieces, b.normal((17,), "cpu"))


def test_a_loaded_counter_continues_the_same_draws_on_every_rank():
    """The DDP fix: every rank draws the same shapes, so every rank's counter equals rank 0's; a
    checkpoint's counter (rank 0's) resumes rank r's own stream (its key holds r)."""
    for rank in (0, 1):
        uninterrupted = CounterStream([5, 6, 7], "penalty")
        uninterrupted.uniform((4,), "cpu", rank)
        saved = uninterrupted.state()
        expected = uninterrupted.uniform((4,), "cpu", rank)
        resumed = CounterStream([5, 6, 7], "penalty")
        resumed.load(saved)
        assert torch.equal(resumed.uniform((4,), "cpu", rank), expected)
    assert not torch.equal(
        CounterStream([5], "noise").normal((4,), "cpu", 0), CounterStream([5], "noise").normal((4,), "cpu", 1)
    )


def test_member_k_of_an_ensemble_stream_is_the_single_stream_of_seed_plus_k():
    ens = CounterStream(run_seeds(3, 4), "noise").normal((6, 2), "cpu")
    for k in range(4):
        assert torch.equal(ens[k], CounterStream([3 + k], "noise").normal((6, 2), "cpu")[0])


def test_checkpoints_of_the_old_generator_streams_warn():
    streams = RunStreams(run_seeds(0, 2), 2)
    with pytest.warns(UserWarning, match="torch.Generator streams of an older gan_lab"):
        streams.load({"noise_generators": [torch.zeros(16, dtype=torch.uint8)] * 2})
    assert streams.noise.counter == 0
    dm = ToyMixtureDataModule("ring8", batch_size=4, members=2, seed=0)
    with pytest.warns(UserWarning, match="torch.Generator streams of an older gan_lab"):
        dm.load_state_dict({"generators": [torch.zeros(16, dtype=torch.uint8)] * 2})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_the_same_integers_and_the_same_numbers_to_rounding():
    cpu, gpu = CounterStream([0, 1], "noise"), CounterStream([0, 1], "noise")
    assert torch.equal(cpu.words(4096, "cpu"), gpu.words(4096, "cuda").cpu())
    z_cpu, z_gpu = cpu.normal((4096,), "cpu"), gpu.normal((4096,), "cuda").cpu()
    torch.testing.assert_close(z_gpu, z_cpu, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Training: member k == single run s + k; ops per step independent of E
# ----------------------------------------------------------------------------------------------


def toy_module(
    members: int, seed: int, regularizers=(), hidden: int = 8, batch_norm: bool = True, **kw
) -> GANModule:
    G = ToyGenerator(members=members, hidden=hidden, layers=1, batch_norm=batch_norm)
    D = ToyDiscriminator(members=members, hidden=hidden, layers=1)
    return GANModule(G, D, regularizers=list(regularizers), seed=seed, **kw)


def trainer(batches: int, callbacks=()) -> L.Trainer:
    return quiet_trainer(batches, callbacks)


@pytest.mark.parametrize(
    "kw", [{}, {"objective": "wasserstein", "regularizers": ["wgan_gp"]}], ids=["ns", "wgan_gp"]
)
def test_member_k_equals_the_single_run_with_seed_plus_k_after_50_steps(kw):
    seed, E, steps = 4, 3, 50
    ens = toy_module(E, seed, **kw)
    trainer(steps).fit(ens, ToyMixtureDataModule("ring8", batch_size=16))
    assert ens.streams.noise.counter == steps * 2 * 16 * 2  # D's and G's (16, 2) noise each step
    for k in range(E):
        single = toy_module(1, seed + k, **kw)
        trainer(steps).fit(single, ToyMixtureDataModule("ring8", batch_size=16))
        for net_e, net_1 in ((ens.G, single.G), (ens.D, single.D)):
            ref = net_1.state_dict()
            for name, value in member(net_e, k).items():
                torch.testing.assert_close(value, ref[name], rtol=0, atol=1e-6, msg=f"member {k} {name}")


class CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class CountBatch(Callback):
    """The ops dispatched from the end of batch ``first`` to the end of batch ``first + 1``: one whole
    batch of the fit loop (the data draw in the transfer hook, D's and G's steps, the hooks)."""

    def __init__(self, first: int = 2) -> None:
        self.first, self.mode = first, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.first:
            self.mode = CountOps()
            self.mode.__enter__()
        elif batch_idx == self.first + 1:
            self.mode.__exit__(None, None, None)


def ops_per_step(members: int, regularizers, data_kw, batch_norm: bool = True) -> int:
    module = toy_module(members, 0, regularizers, hidden=4, batch_norm=batch_norm)
    counter = CountBatch()
    trainer(5, [counter]).fit(module, ToyMixtureDataModule("ring8", batch_size=8, **data_kw))
    return counter.mode.count


@pytest.mark.parametrize(
    "regularizers, data_kw",
    [([], {}), (["wgan_gp"], {}), (["wgan_gp"], {"train_size": 40})],
    ids=["non_saturating", "non_saturating+wgan_gp", "wgan_gp_fixed_set"],
)
@pytest.mark.parametrize(
    "batch_norm",
    [False, True],
    ids=["G_without_batchnorm", "G_with_batchnorm"],
)
def test_ops_dispatched_per_training_step_do_not_depend_on_the_ensemble_size(
    regularizers, data_kw, batch_norm
):
    """Counted with a TorchDispatchMode over one whole batch of the fit loop: the draws of all
    members are one vectorised op each, so E = 1 and E = 64 dispatch the same ops."""
    counts = {E: ops_per_step(E, regularizers, data_kw, batch_norm) for E in (1, 64)}
    print(f"ops per step {regularizers} {data_kw} batch_norm={batch_norm}: {counts}")
    assert counts[1] > 100 and counts[1] == counts[64]
