"""gan_lab.checks: which regularizer combinations are refused or warned about, by what each
regularizer does (needs_input_grad / enforces_lipschitz), not by one flag for all."""

import warnings

import pytest

from gan_lab.errors import ConfigError
from gan_lab.module import GANModule
from gan_lab.nets import ToyDiscriminator, ToyGenerator


def nets():
    return ToyGenerator(members=1, hidden=4, layers=1), ToyDiscriminator(members=1, hidden=4, layers=1)


def build(objective, regularizers):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GANModule(*nets(), objective=objective, regularizers=regularizers)
    return [str(w.message) for w in caught if "Lipschitz constraint" in str(w.message)]


def test_weight_clipping_fights_only_a_lipschitz_penalty():
    with pytest.raises(ConfigError, match="weight clipping and the gradient penalty 'wgan_gp'"):
        build("wasserstein", ["weight_clipping", "wgan_gp"])
    assert build("non_saturating", ["weight_clipping", "r1"]) == []  # R1 bounds no Lipschitz constant


@pytest.mark.parametrize(
    ("regularizers", "warns"),
    [([], True), (["r1"], True), (["dragan"], True), (["wgan_gp"], False), (["weight_clipping"], False)],
)
def test_wasserstein_warns_without_a_lipschitz_constraint(regularizers, warns):
    assert bool(build("wasserstein", regularizers)) == warns
