"""The name registries (gan_lab.registry): objectives, regularizers, toy datasets, and new kinds.

The unknown-name lines are compared byte for byte with the ones the command line prints (see
tests/test_cli.py, tests/test_bad_input.py): ``errors.check_choice``'s format, the names sorted.
"""

from __future__ import annotations

import pytest
import torch

from gan_lab.data.toy import MIXTURES, GaussianMixture2D, get_mixture, ring
from gan_lab.errors import ConfigError, check_choice
from gan_lab.losses import OBJECTIVES, Hinge, get_objective
from gan_lab.registry import Registry
from gan_lab.regularizers import (
    R1,
    REGULARIZERS,
    PenaltyInputs,
    Regularizer,
    WeightClipping,
    get_regularizer,
    register,
)

UNKNOWN = [
    (
        get_objective,
        "hing",
        "unknown objective 'hing'; valid objectives: hinge, least_squares, minimax, non_saturating, "
        "relativistic, wasserstein",
    ),
    (
        get_regularizer,
        "r3",
        "unknown regularizer 'r3'; valid regularizers: dragan, one_sided_gp, perceptual, pixel, r1, r2, "
        "sobel_edge, style, weight_clipping, wgan_gp",
    ),
    (get_mixture, "ring9", "unknown dataset 'ring9'; valid datasets: grid25, ring8, ring8_veegan"),
]


# --- the three registries of the lab -------------------------------------------------------------


@pytest.mark.parametrize("get, name, message", UNKNOWN)
def test_unknown_name_is_the_one_line_of_before(get, name, message):
    with pytest.raises(ConfigError) as info:
        get(name)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "registry, kind", [(OBJECTIVES, "objective"), (REGULARIZERS, "regularizer"), (MIXTURES, "dataset")]
)
@pytest.mark.parametrize("name", ["nope", "gan_lab.losses.Hinge", "HINGE", "", 3, ["r1"], None])
def test_anything_but_a_registered_name_is_the_check_choice_line(registry, kind, name):
    # class paths are jsonargparse's (tests/test_cli.py::test_objective_by_class_path); names are
    # exact (no case folding); a non-string is refused the same way, not with a TypeError
    with pytest.raises(ConfigError) as expected:
        check_choice(kind, name, sorted(registry))
    with pytest.raises(ConfigError) as got:
        registry.get(name)
    assert str(got.value) == str(expected.value)
    assert "\n" not in str(got.value)


def test_names_and_order_are_those_of_before():
    assert list(OBJECTIVES) == [
        "minimax",
        "non_saturating",
        "wasserstein",
        "hinge",
        "least_squares",
        "relativistic",
    ]
    assert list(REGULARIZERS) == [
        "wgan_gp",
        "one_sided_gp",
        "dragan",
        "r1",
        "r2",
        "weight_clipping",
        "pixel",
        "perceptual",
        "style",
        "sobel_edge",
    ]
    assert list(MIXTURES) == ["ring8", "grid25", "ring8_veegan"]
    for registry in (OBJECTIVES, REGULARIZERS):
        for name, cls in registry.items():
            assert cls.name == name
    assert (
        OBJECTIVES["hinge"] is Hinge
        and REGULARIZERS["r1"] is R1
        and REGULARIZERS["weight_clipping"] is WeightClipping
    )


def test_names_build_new_instances_and_instances_pass_through():
    assert isinstance(get_objective("hinge"), Hinge) and get_objective("hinge") is not get_objective("hinge")
    for instance, get in [
        (Hinge(), get_objective),
        (R1(weight=0.5, every=16), get_regularizer),
        (WeightClipping(0.05), get_regularizer),
        (ring(4), get_mixture),
    ]:
        assert get(instance) is instance
    m = get_mixture("ring8_veegan")
    assert isinstance(m, GaussianMixture2D) and m.name == "ring8_veegan" and m.std == 0.02
    torch.testing.assert_close(m.means.norm(dim=1), torch.full((8,), 2.0))


def test_a_duplicate_is_refused_in_one_line_and_changes_nothing():
    class OtherHinge(Hinge):  # inherits name = "hinge"
        pass

    with pytest.raises(ConfigError) as info:
        OBJECTIVES.register(OtherHinge)
    assert str(info.value) == (
        "objective 'hinge' is already registered (gan_lab.losses.objectives.Hinge); pick another name"
    )
    assert OBJECTIVES["hinge"] is Hinge and len(OBJECTIVES) == 6
    with pytest.raises(ConfigError, match="dataset 'ring8' is already registered"):
        MIXTURES.register(lambda: ring(8), name="ring8")
    with pytest.raises(ConfigError, match="regularizer 'r1' is already registered"):
        register(R1)


def test_a_new_regularizer_by_register(monkeypatch):
    monkeypatch.setattr(REGULARIZERS, "_entries", dict(REGULARIZERS._entries))  # undone after the test

    @register
    class ZeroPenalty(Regularizer):
        name = "zero"

        def penalty(self, inputs: PenaltyInputs) -> torch.Tensor:
            return torch.zeros(inputs.real.shape[: inputs.batch_ndim])

    reg = get_regularizer("zero")
    assert isinstance(reg, ZeroPenalty) and reg.weight == 1.0
    with pytest.raises(ConfigError, match=r"valid regularizers: .*weight_clipping, wgan_gp, zero$"):
        get_regularizer("one")


# --- Registry itself ------------------------------------------------------------------------------


def test_register_forms_return_the_entry():
    reg = Registry("widget")

    class Named:
        name = "named"

    assert reg.register(Named) is Named

    @reg.register
    class Decorated:
        name = "decorated"

    @reg.register(name="factory")
    def make() -> Named:
        return Named()

    assert Decorated.name == "decorated" and make.__name__ == "make"
    assert list(reg) == ["named", "decorated", "factory"] and len(reg) == 3
    assert isinstance(reg.get("factory"), Named) and isinstance(reg.get("decorated"), Decorated)
    assert repr(reg) == "Registry('widget', ['named', 'decorated', 'factory'])"


@pytest.mark.parametrize(
    "entry", [object, type("Empty", (), {"name": ""}), type("NotAString", (), {"name": 3})]
)
def test_an_entry_without_a_name_is_refused(entry):
    reg = Registry("widget")
    with pytest.raises(ConfigError, match=r"^cannot register .* as a widget: it has no name") as info:
        reg.register(entry)
    assert "\n" not in str(info.value) and len(reg) == 0


def test_a_new_kind_in_one_line():
    class FeatureNet(torch.nn.Module):
        name = "tiny"

    FEATURE_NETS = Registry("feature network", base=torch.nn.Module, entries=[FeatureNet])
    net = FeatureNet()
    assert FEATURE_NETS.get(net) is net and isinstance(FEATURE_NETS.get("tiny"), FeatureNet)
    with pytest.raises(ConfigError) as info:
        FEATURE_NETS.get("inception")
    assert str(info.value) == "unknown feature network 'inception'; valid feature networks: tiny"
    policies = Registry("policy", plural="policies")
    with pytest.raises(ConfigError, match=r"^unknown policy 'stop'; valid policies: $"):
        policies.get("stop")


def test_without_a_base_nothing_passes_through():
    reg = Registry("objective")  # no base: an Objective is not a name
    with pytest.raises(ConfigError, match=r"^unknown objective Hinge\(\); valid objectives: $"):
        reg.get(Hinge())


def test_a_kind_named_by_another_attribute():
    """``key``: the evaluators' registry reads an entry's name from ``NAME`` (gan_lab.study.EVALUATORS)."""

    class Counter:
        NAME = "count"

    reg = Registry("evaluator", key="NAME", entries=[Counter])
    assert reg["count"] is Counter and list(reg) == ["count"]
    with pytest.raises(ConfigError, match=r"^cannot register .* it has no name \(set its `NAME` attribute"):
        reg.register(type("Nameless", (), {"NAME": ""}))
    with reg.temporarily(type("Other", (), {"NAME": "other"})):
        assert sorted(reg) == ["count", "other"]
    assert list(reg) == ["count"]
