"""Net specs: recorded constructor arguments, plain-data specs, and a guarded rebuild."""

import io

import pytest
import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.nets import ToyDiscriminator, ToyGenerator
from gan_lab.nets.spec import RecordsInit, build_net, net_spec


class Base(RecordsInit, nn.Module):
    def __init__(self, width: int = 3, scale: float = 1.0) -> None:
        super().__init__()
        self.fc = nn.Linear(2, width)
        self.scale = scale


class Child(Base):
    def __init__(self, depth: int = 2, **kwargs) -> None:
        super().__init__(width=7, **kwargs)
        self.depth = depth


class Inherits(Base):  # no __init__ of its own: Base's arguments are the outermost ones
    pass


class PositionalOnly(RecordsInit, nn.Module):
    def __init__(self, a, /) -> None:
        super().__init__()


class Holder(RecordsInit, nn.Module):
    def __init__(self, inner: nn.Module, tag: str = "x") -> None:
        super().__init__()
        self.inner = inner


def test_records_bound_arguments_with_defaults():
    assert Base(5).init_args == {"width": 5, "scale": 1.0}
    assert Base(scale=2.0).init_args == {"width": 3, "scale": 2.0}


def test_outermost_class_arguments_win():
    net = Child(4, scale=0.5)
    assert net.init_args == {"depth": 4, "scale": 0.5}  # not Base's {"width": 7, ...}
    assert net.fc.out_features == 7
    assert Inherits(9).init_args == {"width": 9, "scale": 1.0}
    assert not any(k.startswith("_records") for k in vars(net))  # no bookkeeping left behind


def test_recording_adds_no_state():
    assert set(Base().state_dict()) == {"fc.weight", "fc.bias"}


def test_positional_only_constructor_cannot_be_replayed():
    assert PositionalOnly(1).init_args is None
    assert net_spec(PositionalOnly(1)) is None


def test_net_spec_of_a_plain_module_is_none():
    assert net_spec(nn.Linear(2, 2)) is None


def test_net_spec_nests_recording_nets_and_warns_for_other_objects():
    spec = net_spec(Holder(Base(4), tag="y"))
    assert spec["init_args"]["inner"] == {
        "class_path": f"{__name__}.Base",
        "init_args": {"width": 4, "scale": 1.0},
    }
    with pytest.warns(UserWarning, match="not plain data"):
        assert net_spec(Holder(nn.Linear(1, 1))) is None


@pytest.mark.parametrize(
    "net",
    [ToyGenerator(members=3, hidden=8, layers=2, seed=5), ToyDiscriminator(members=2, hidden=8, layers=1)],
    ids=["G", "D"],
)
def test_toy_nets_round_trip_through_a_weights_only_file(net):
    spec = net_spec(net)
    assert spec["class_path"] == f"gan_lab.nets.toy.{type(net).__name__}"
    buf = io.BytesIO()
    torch.save({"spec": spec, "state": net.state_dict()}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert loaded["spec"] == spec
    rebuilt = build_net(loaded["spec"])
    assert type(rebuilt) is type(net) and rebuilt.init_args == net.init_args
    rebuilt.load_state_dict(loaded["state"])
    net.eval(), rebuilt.eval()
    x = torch.randn(net.members, 5, 2)
    torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=0)


def test_nested_spec_is_built_inside_the_allowed_prefixes():
    spec = net_spec(Holder(Base(4)))
    net = build_net(spec, allowed_prefixes=(f"{__name__}.",))
    assert isinstance(net.inner, Base) and net.inner.fc.out_features == 4


REFUSED = [
    ({"class_path": "os.system", "init_args": {}}, "outside the allowed modules"),
    ({"class_path": "torch.nn.Linear", "init_args": {}}, "outside the allowed modules"),
    ({"class_path": "gan_lab_evil.Net", "init_args": {}}, "outside the allowed modules"),
    ({"class_path": "gan_lab.nets.toy.torch.nn.Linear", "init_args": {}}, "resolves to 'torch.nn"),
    ({"class_path": "gan_lab.nets.toy.member", "init_args": {}}, "not an nn.Module subclass"),
    ({"class_path": "gan_lab.errors.ConfigError", "init_args": {}}, "not an nn.Module subclass"),
    ({"class_path": "gan_lab.nets.toy.Nope", "init_args": {}}, "has no 'Nope'"),
    ({"class_path": "gan_lab.nope.Net", "init_args": {}}, "has no 'nope'"),
    ({"class_path": "gan_lab.nets.toy.ToyGenerator", "init_args": {"wings": 2}}, "cannot build"),
    ({"class_path": "gan_lab.nets.toy.ToyGenerator", "init_args": {"hidden": 0}}, "'hidden' must be"),
    ({"class_path": "gan_lab.nets.toy.ToyGenerator"}, "a net spec must be"),
    (["gan_lab.nets.toy.ToyGenerator"], "a net spec must be"),
    (
        {
            "class_path": "gan_lab.nets.toy.ToyGenerator",
            "init_args": {"x": {"class_path": "os.system", "init_args": {}}},
        },
        "'os.system' is outside",
    ),
]


@pytest.mark.parametrize(("spec", "message"), REFUSED)
def test_build_net_refuses_with_one_line(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_net(spec)
    assert "\n" not in str(info.value)
