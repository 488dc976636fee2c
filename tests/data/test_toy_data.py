"""Tests of the 2D Gaussian mixtures and their datamodule (gan_lab.data.toy).

Known values by hand: the ring8 and grid25 means of docs/DESIGN.md. Sampling is checked against the
mixture's definition: equal component shares (chi-square) and, for a 2D isotropic Gaussian, an
expected squared std-scaled distance to the mean of exactly 2. The datamodule's ensemble contract:
member k's stream is the stream of a 1-member datamodule with seed + k.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch
from scipy.stats import chisquare
from torch import Tensor

from gan_lab.data import MIXTURES, ToyMixtureDataModule, get_mixture
from gan_lab.data.context import RunContext
from gan_lab.errors import ConfigError

CPU = torch.device("cpu")

# --------------------------------------------------------------------------------------------------
# The protocol's mixtures, by hand
# --------------------------------------------------------------------------------------------------


def test_ring8_means_are_the_eight_unit_roots():
    m = get_mixture("ring8")
    by_hand = torch.tensor([[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)])
    assert m.means.shape == (8, 2) and m.num_modes == 8
    torch.testing.assert_close(m.means, by_hand, rtol=0, atol=1e-7)
    torch.testing.assert_close(m.means[2], torch.tensor([0.0, 1.0]), rtol=0, atol=1e-7)  # i = 2: 90°
    torch.testing.assert_close(m.means[5], torch.tensor([-(0.5**0.5), -(0.5**0.5)]), rtol=0, atol=1e-7)
    assert m.std == 0.01


def test_ring8_has_no_repeated_mode():
    # linspace(0, 2π, 8) would put the last mean on the first one
    means = get_mixture("ring8").means.double()
    torch.testing.assert_close(means.norm(dim=1), torch.ones(8, dtype=torch.float64), rtol=0, atol=1e-7)
    pairwise = torch.cdist(means, means) + 10 * torch.eye(8, dtype=torch.float64)
    chord = 2 * math.sin(math.pi / 8)  # the distance between neighbours 45° apart on the unit circle
    assert pairwise.min().item() == pytest.approx(chord, abs=1e-6)
    angles = torch.atan2(means[:, 1], means[:, 0])
    steps = torch.diff(angles, append=angles[:1] + 2 * math.pi).remainder(2 * math.pi)  # wraps 7 -> 0
    torch.testing.assert_close(steps, torch.full((8,), math.pi / 4, dtype=torch.float64), rtol=0, atol=1e-6)


def test_grid25_means_are_the_grid_minus4_to_4_step_2():
    m = get_mixture("grid25")
    assert m.means.shape == (25, 2) and m.num_modes == 25
    got = {tuple(p) for p in m.means.tolist()}
    assert got == set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert m.std == 0.05


def test_unknown_mixture_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'") as err:
        get_mixture("nope")
    for name in MIXTURES:
        assert name in str(err.value)
    assert {"ring8", "grid25"} <= set(MIXTURES)


# --------------------------------------------------------------------------------------------------
# Sampling follows the mixture
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_samples_have_equal_shares_and_gaussian_spread(name):
    m = get_mixture(name)
    n = 80_000
    x = m.sample(n, torch.Generator().manual_seed(0)).double()  # (n, 2)
    assert x.shape == (n, 2)
    d = torch.cdist(x, m.means.double())  # (n, K); components are > 70 std apart: nearest = the source
    nearest = d.argmin(dim=1)
    counts = torch.bincount(nearest, minlength=m.num_modes).numpy()
    assert chisquare(counts).pvalue > 1e-3  # equal weights
    # |x - μ|² / σ² ~ χ²(2) for a 2D isotropic Gaussian: mean 2 (s.e. 2/sqrt(n) ≈ 0.007)
    r2 = (d.gather(1, nearest[:, None]).squeeze(1) / m.std) ** 2
    assert r2.mean().item() == pytest.approx(2.0, rel=0.03)
    # each component is centred on its mean (s.e. of a component mean: σ / sqrt(n/K))
    for k in range(m.num_modes):
        centre = x[nearest == k].mean(0)
        assert (centre - m.means[k].double()).abs().max() < 5 * m.std / math.sqrt(n / m.num_modes)


def test_sampling_is_reproducible_from_the_generator():
    m = get_mixture("ring8")
    a = m.sample(100, torch.Generator().manual_seed(4))
    b = m.sample(100, torch.Generator().manual_seed(4))
    c = m.sample(100, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --------------------------------------------------------------------------------------------------
# ToyMixtureDataModule: per-member streams
# --------------------------------------------------------------------------------------------------


def _stream(dm: ToyMixtureDataModule, n: int) -> list[Tensor]:
    return [dm.sample(CPU) for _ in range(n)]


def test_datamodule_batch_shape_and_stream_advances():
    dm = ToyMixtureDataModule("grid25", batch_size=16, members=3, seed=0)
    a, b = _stream(dm, 2)
    assert a.shape == (3, 16, 2)  # (E, B, 2)
    assert not torch.equal(a, b)  # the stream moves on: not the same batch each step
    near = torch.cdist(a.reshape(-1, 2), dm.mixture.means).min(dim=1).values
    assert near.max() < 6 * dm.mixture.std  # drawn from the named mixture


def test_member_k_stream_equals_single_datamodule_with_seed_plus_k():
    E, s = 3, 10
    ens = _stream(ToyMixtureDataModule("ring8", batch_size=32, members=E, seed=s), 4)
    for k in range(E):
        single = _stream(ToyMixtureDataModule("ring8", batch_size=32, members=1, seed=s + k), 4)
        for t in range(4):
            assert single[t].shape == (1, 32, 2)
            assert torch.equal(ens[t][k : k + 1], single[t]), f"member {k}, batch {t}"
    assert not torch.equal(ens[0][0], ens[0][1])  # two members see different data


def test_setup_takes_members_and_seed_from_the_lightning_modules_run_context():
    dm = ToyMixtureDataModule("ring8", batch_size=8)
    context = RunContext(members=3, seed=5)
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(run_context=context), global_rank=0)
    dm.setup("fit")
    assert (dm.members, dm.seed) == (3, 5)
    given = ToyMixtureDataModule("ring8", batch_size=8)
    given.setup("fit", context)  # the same context given directly
    assert (given.members, given.seed) == (3, 5)
    # a LightningModule without a run context: its attributes are not read, the defaults hold
    plain = ToyMixtureDataModule("ring8", batch_size=8)
    plain.trainer = SimpleNamespace(lightning_module=SimpleNamespace(members=3, seed=5), global_rank=0)
    plain.setup("fit")
    assert (plain.members, plain.seed, plain.pack) == (1, 0, 1)
    explicit = ToyMixtureDataModule("ring8", batch_size=8, members=3, seed=5)
    for a, b in zip(_stream(dm, 2), _stream(explicit, 2)):
        assert torch.equal(a, b)


def test_setup_without_trainer_defaults_to_one_member_seed_0():
    dm = ToyMixtureDataModule("ring8", batch_size=8)
    assert dm.trainer is None
    dm.setup("fit")
    assert (dm.members, dm.seed) == (1, 0)
    # explicit values are kept
    dm2 = ToyMixtureDataModule("ring8", batch_size=8, members=2, seed=7)
    dm2.setup("fit")
    assert (dm2.members, dm2.seed) == (2, 7)


def test_batch_transfer_replaces_the_step_index_by_a_real_batch():
    dm = ToyMixtureDataModule("ring8", batch_size=5, members=2, seed=0, steps_per_epoch=3)
    loader = dm.train_dataloader()
    steps = list(loader)
    assert steps == [0, 1, 2]
    batch = dm.transfer_batch_to_device(steps[0], CPU, 0)
    ref = ToyMixtureDataModule("ring8", batch_size=5, members=2, seed=0).sample(CPU)
    assert torch.equal(batch, ref)


def test_only_step_indices_are_replaced_by_draws():
    """Any other batch (a validation loader's) is moved as Lightning moves it, not drawn."""
    dm = ToyMixtureDataModule("ring8", batch_size=5, seed=0)
    x = torch.arange(3.0)
    assert dm.transfer_batch_to_device(x, CPU, 0) is x
    assert dm.transfer_batch_to_device(0, CPU, 0).shape == (1, 5, 2)


def test_state_dict_round_trip_resumes_the_stream():
    dm = ToyMixtureDataModule("ring8", batch_size=16, members=2, seed=3)
    first = _stream(dm, 3)
    state = dm.state_dict()
    expected = _stream(dm, 2)  # what the uninterrupted run draws next
    resumed = ToyMixtureDataModule("ring8", batch_size=16, members=2, seed=3)
    resumed.load_state_dict(state)
    got = _stream(resumed, 2)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    assert not torch.equal(got[0], first[0])  # not simply restarted from the seed


def test_state_dict_before_any_batch_is_empty_and_loads_as_a_no_op():
    dm = ToyMixtureDataModule("ring8", batch_size=4, members=1, seed=0)
    assert dm.state_dict() == {}
    dm.load_state_dict({})
    assert torch.equal(dm.sample(CPU), ToyMixtureDataModule("ring8", batch_size=4, members=1).sample(CPU))


def test_sample_with_a_device_string_advances_like_a_torch_device():
    dm = ToyMixtureDataModule("ring8", batch_size=8, members=2, seed=0)
    ref = _stream(ToyMixtureDataModule("ring8", batch_size=8, members=2, seed=0), 2)
    got = [dm.sample("cpu") for _ in range(2)]
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_bad_batch_size_raises_config_error(batch_size):
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        ToyMixtureDataModule("ring8", batch_size=batch_size, members=1, seed=0)


@pytest.mark.parametrize("steps", [0, -3, 1.5, False])
def test_bad_steps_per_epoch_raises_config_error(steps):
    with pytest.raises(ConfigError, match="steps_per_epoch must be an integer >= 1"):
        ToyMixtureDataModule("ring8", steps_per_epoch=steps)


def test_unknown_name_in_datamodule_raises_config_error():
    with pytest.raises(ConfigError, match="valid datasets: grid25, ring8, ring8_veegan"):
        ToyMixtureDataModule("nope")


# --------------------------------------------------------------------------------------------------
# Packs and a fixed training set iterated in epochs (PacGAN's protocol)
# --------------------------------------------------------------------------------------------------


def test_a_packed_batch_holds_batch_size_times_pack_samples():
    dm = ToyMixtureDataModule("ring8", batch_size=5, members=2, seed=0, pack=3)
    assert dm.sample(CPU).shape == (2, 15, 2)
    dm = ToyMixtureDataModule("ring8", batch_size=5)
    dm.setup("fit", RunContext(members=2, seed=1, pack=4))
    assert dm.pack == 4 and dm.sample(CPU).shape == (2, 20, 2)


def test_fixed_set_epochs_visit_every_sample_once_in_a_new_order_each_epoch():
    S, B, m = 12, 4, 2  # 12 packs of 2 = 24 samples, 3 batches of 4 packs (8 samples) an epoch
    dm = ToyMixtureDataModule("ring8", batch_size=B, members=2, seed=0, pack=m, train_size=S)
    assert len(dm.train_dataloader()) == S // B
    data = dm.fixed_set(CPU)
    assert data.shape == (2, S * m, 2)
    epochs = [torch.cat(_stream(dm, S // B), dim=1) for _ in range(2)]  # (E, 24, 2) each
    for e in range(2):
        for epoch in epochs:  # each epoch: a permutation of the member's fixed set
            assert torch.equal(epoch[e].sort(dim=0).values, data[e].sort(dim=0).values)
            assert torch.unique(epoch[e], dim=0).shape[0] == S * m  # no sample twice
        assert not torch.equal(epochs[0][e], epochs[1][e])  # reshuffled between epochs
    assert not torch.equal(data[0], data[1])  # members have their own sets


def test_fixed_set_member_k_is_the_single_run_with_seed_plus_k():
    ens = _stream(ToyMixtureDataModule("grid25", batch_size=4, members=3, seed=7, train_size=10), 6)
    for k in range(3):
        single = _stream(
            ToyMixtureDataModule("grid25", batch_size=4, members=1, seed=7 + k, train_size=10), 6
        )
        for a, b in zip(ens, single):
            assert torch.equal(a[k : k + 1], b)


def test_fixed_set_resumes_mid_epoch_exactly():
    kw = {"batch_size": 3, "members": 2, "seed": 5, "train_size": 9}  # 3 batches an epoch
    dm = ToyMixtureDataModule("ring8", **kw)
    _stream(dm, 4)  # one epoch and one batch into the next
    state = dm.state_dict()
    assert state["draws"] == 4
    expected = _stream(dm, 4)
    resumed = ToyMixtureDataModule("ring8", **kw)
    resumed.load_state_dict(state)
    for a, b in zip(_stream(resumed, 4), expected):
        assert torch.equal(a, b)


def test_under_ddp_every_rank_reads_its_slice_of_the_one_fixed_set():
    """W = 2 ranks of batch B read, side by side, the batches of one process of batch W·B: the same
    fixed set and epoch order on every rank (rank 0's streams), slice r of each global batch."""

    def on_rank(rank: int, world: int, batch_size: int) -> ToyMixtureDataModule:
        dm = ToyMixtureDataModule("ring8", batch_size=batch_size, train_size=12, pack=1)
        module = SimpleNamespace(run_context=RunContext(members=2, seed=3, pack=1))
        dm.trainer = SimpleNamespace(lightning_module=module, global_rank=rank, world_size=world)
        dm.setup("fit")
        return dm

    one = on_rank(0, 1, 4)
    ranks = [on_rank(r, 2, 2) for r in range(2)]
    assert len(one.train_dataloader()) == 3 and all(len(dm.train_dataloader()) == 3 for dm in ranks)
    expected = _stream(one, 6)  # two epochs
    got = [torch.cat(pair, dim=1) for pair in zip(*(_stream(dm, 6) for dm in ranks))]
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="smaller than one global batch of 4 ranks x 4 packs"):
        on_rank(0, 4, 4)


def test_fixed_set_smaller_than_a_batch_is_refused():
    with pytest.raises(ConfigError, match="train_size 5 is smaller than one batch"):
        ToyMixtureDataModule("ring8", batch_size=8, train_size=5)
