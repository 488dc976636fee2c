"""A mixed ensemble (:class:`gan_lab.losses.PerMember`): J objectives side by side, S seeds each, in
one module; member ``j·S + i`` is the single run of objective ``j`` with seed ``seed + i``."""

from __future__ import annotations

import pytest
import torch
from tiny_fit import quiet_trainer

from gan_lab.data import ToyMixtureDataModule
from gan_lab.errors import ConfigError
from gan_lab.evaluators import ModeCoverageEvaluator
from gan_lab.losses import OBJECTIVES, PerMember, get_objective
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator, member
from gan_lab.seeding import run_seeds


class PlainG(torch.nn.Linear):
    """A single net (no ``members``)."""

    z_dim = 2

    def __init__(self) -> None:
        super().__init__(2, 2)


def toy(members: int, seed: int, objective, **kw) -> GANModule:
    G = ToyGenerator(members=members, hidden=8, layers=1)
    D = ToyDiscriminator(members=members, hidden=8, layers=1)
    return GANModule(G, D, objective=objective, seed=seed, **kw)


def fit(module: GANModule, steps: int, callbacks=()) -> None:
    quiet_trainer(steps, callbacks).fit(module, ToyMixtureDataModule("ring8", batch_size=16))


def test_per_member_losses_are_each_blocks_objective():
    names = ["minimax", "relativistic", "least_squares"]
    mixed = get_objective(names)
    r, f = torch.randn(6, 5), torch.randn(6, 5)  # E = 6: S = 2 members per objective
    d, g = mixed.d_loss(r, f), mixed.g_loss(f, r)
    for j, name in enumerate(names):
        o, rows = OBJECTIVES.get(name), slice(2 * j, 2 * j + 2)
        assert torch.equal(d[rows], o.d_loss(r[rows], f[rows]))
        assert torch.equal(g[rows], o.g_loss(f[rows], r[rows] if o.needs_real_for_g else None))
    assert mixed.needs_real_for_g and not mixed.needs_lipschitz
    assert mixed.member_names(6) == ["minimax"] * 2 + ["relativistic"] * 2 + ["least_squares"] * 2


def test_member_seeds_repeat_per_objective_block():
    assert run_seeds(5, 6, blocks=3) == [5, 6, 5, 6, 5, 6]
    module = toy(4, 5, ["hinge", "non_saturating"])
    assert module.run_seeds == [5, 6, 5, 6]
    assert module.member_objectives == ["hinge", "hinge", "non_saturating", "non_saturating"]
    assert module.hparams["objective"] == ["hinge", "non_saturating"]


@pytest.mark.parametrize(
    "objectives, kw",
    [
        (["non_saturating", "relativistic", "hinge"], {}),
        (["wasserstein", "hinge"], {"regularizers": ["wgan_gp"], "n_critic": 2}),
    ],
    ids=["ns+rsgan+hinge", "wgan_gp+hinge"],
)
def test_member_j_s_plus_i_equals_the_single_run_of_objective_j_and_seed_s_plus_i(objectives, kw):
    seed, S, steps = 3, 2, 30
    mixed = toy(S * len(objectives), seed, objectives, **kw)
    evaluator = ModeCoverageEvaluator(every_n_g_steps=10, n_samples=200, plot=False)
    fit(mixed, steps, [evaluator])
    rows = [r for r in evaluator.history if r["g_steps"] == max(h["g_steps"] for h in evaluator.history)]
    for j, name in enumerate(objectives):
        for i in range(S):
            k = j * S + i
            single = toy(1, seed + i, name, **kw)
            single_eval = ModeCoverageEvaluator(every_n_g_steps=10, n_samples=200, plot=False)
            fit(single, steps, [single_eval])
            for net_e, net_1 in ((mixed.G, single.G), (mixed.D, single.D)):
                ref = net_1.state_dict()
                for key, value in member(net_e, k).items():
                    torch.testing.assert_close(
                        value, ref[key], rtol=0, atol=1e-6, msg=f"{name} seed {seed + i} {key}"
                    )
            assert rows[k]["seed"] == seed + i
            assert rows[k]["modes"] == single_eval.history[-1]["modes"]


@pytest.mark.parametrize("data_seed", [None, 3, 7])
def test_the_data_repeats_the_run_seeds_of_a_mixed_ensemble_whichever_seed_it_has(data_seed):
    """Member j·S + i reads the data stream of seed + i, with the data's seed taken from the model
    (None) or given (``data.seed``, = the model's or another)."""
    module = toy(4, 3, ["hinge", "non_saturating"])
    data = ToyMixtureDataModule("ring8", batch_size=4, seed=data_seed)
    quiet_trainer(1).fit(module, data)
    base = 3 if data_seed is None else data_seed
    assert data.stream_seeds() == [base, base + 1, base, base + 1]


def test_mixed_ensembles_that_cannot_split_evenly_or_are_not_ensembles_are_refused():
    with pytest.raises(ConfigError, match="do not split evenly"):
        toy(3, 0, ["hinge", "minimax"])
    with pytest.raises(ConfigError, match="two or more distinct"):
        get_objective(["hinge", "hinge"])
    with pytest.raises(ConfigError, match="need an ensemble"):
        GANModule(PlainG(), torch.nn.Linear(2, 1), objective=["hinge", "minimax"])
    assert isinstance(get_objective(["hinge", "minimax"]), PerMember)
    assert get_objective(["hinge"]).name == "hinge"
    # an objective that needs a Lipschitz D in the mix is warned about without one, as on its own
    with pytest.warns(UserWarning, match="Lipschitz"):
        toy(4, 0, ["wasserstein", "hinge"])
