"""The tiny study the W&B tests read back: 2 objectives × 2 seeds trained as ensemble members, W&B
offline, with the network refused to this process (any connection but the local W&B service fails)."""

import socket

import pytest
from wandb_study import BASE, OBJECTIVES, SEEDS, WIDE, wide_ring

from gan_lab.cli import main
from gan_lab.data.toy import MIXTURES


class NetworkRefused(AssertionError):
    pass


@pytest.fixture(scope="session")
def no_network():
    """Refuse every internet connection of this process (loopback and unix sockets stay: the W&B
    service runs beside it); the attempts are recorded."""
    attempts: list = []
    connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost"):
                attempts.append(address)
                raise NetworkRefused(f"network access to {address} in a test")
        return connect(self, address)

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", guarded)
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # a closed port, should anything try
    mp.delenv("WANDB_API_KEY", raising=False)
    yield attempts
    mp.undo()


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, no_network):
    """The study folder of the tiny study (W&B offline, one job at a time, in this process)."""
    tmp = tmp_path_factory.mktemp("wandb_study")
    (tmp / "base.yaml").write_text(BASE)
    (tmp / "study.yaml").write_text(
        f"name: tiny\nbase: base.yaml\nseeds: {len(SEEDS)}\nseed: {SEEDS[0]}\n"
        f"objectives: [{', '.join(OBJECTIVES)}]\nargs: [--data.init_args.name={WIDE}]\n"
    )
    args = ["study", str(tmp / "study.yaml"), "--out", str(tmp / "runs"), "--jobs", "1", "--media-size", "64"]
    with MIXTURES.temporarily(wide_ring, name=WIDE):  # one job at a time, in this process
        assert main(args) == 0
    assert no_network == []
    return tmp / "runs" / "tiny"
