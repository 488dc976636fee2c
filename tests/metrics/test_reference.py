"""Reference statistics: computed once and reused, stale or foreign files refused, moments against
numpy, per-rank shares reassembled into the one-process features (simulated ranks, and two real
gloo processes)."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from gan_lab.errors import ConfigError
from gan_lab.metrics import reference as ref
from gan_lab.metrics.features import FeatureNet
from gan_lab.metrics.reference import (
    ReferenceStats,
    feature_moments,
    full_reference_key,
    load_reference,
    rank_share,
    reassemble,
    reference_features,
    reference_path,
)


class ToyNet(FeatureNet):
    """A fixed random projection of the flattened image, and a count of the images it saw."""

    name = "toy"
    distance_name = "FD on toy features"

    def __init__(self, weights_hash: str = "0123456789abcdef", dim: int = 5, pixels: int = 16) -> None:
        super().__init__()
        self.dim, self.weights_hash = dim, weights_hash
        self.register_buffer("w", torch.randn(pixels, dim, generator=torch.Generator().manual_seed(0)))
        self.seen = 0
        self.freeze()

    def input_handling(self) -> str:
        return "flattened"

    def forward(self, x):
        self.seen += x.shape[0]
        return torch.tanh(x.flatten(1) @ self.w)


def _images(n: int = 10) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1


KEY = {"dataset": "toy_digits", "split": "train", "N": 10}


def test_written_once_then_reused(tmp_path):
    net, x = ToyNet(), _images()
    stats = reference_features(net, x, KEY, tmp_path, batch_size=4)
    assert isinstance(stats, ReferenceStats) and stats.path.is_file() and stats.path.parent == tmp_path
    assert net.seen == 10
    torch.testing.assert_close(stats.features, net(x), rtol=0, atol=0)
    f = stats.features.double().numpy()
    np.testing.assert_allclose(stats.mu.numpy(), f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma.numpy(), np.cov(f, rowvar=False), rtol=1e-10, atol=1e-14)
    assert stats.features.dtype == torch.float32 and stats.mu.dtype == stats.sigma.dtype == torch.float64
    assert stats.key == {**KEY, "feature_net": "toy", "feature_hash": "0123456789abcdef", "feature_dim": 5}
    assert [p.name for p in tmp_path.iterdir()] == [stats.path.name]  # no temporary file left

    mtime, seen = os.stat(stats.path).st_mtime_ns, net.seen
    again = reference_features(net, x, KEY, tmp_path)
    assert net.seen == seen and os.stat(stats.path).st_mtime_ns == mtime  # read, not recomputed
    for name in ("features", "mu", "sigma"):
        assert torch.equal(getattr(again, name), getattr(stats, name))
    assert again.key == stats.key and again.path == stats.path


def test_changed_key_or_weights_gives_another_file(tmp_path):
    x = _images()
    a = reference_features(ToyNet(), x, KEY, tmp_path)
    b = reference_features(ToyNet(), x[:8], {**KEY, "N": 8}, tmp_path)
    c = reference_features(ToyNet(weights_hash="fedcba9876543210"), x, KEY, tmp_path)
    assert len({a.path, b.path, c.path}) == 3 and b.features.shape == (8, 5)


@pytest.mark.parametrize(
    "stale, field",
    [
        ({"N": 8}, "N: stored 10, wanted 8"),
        (
            {"feature_hash": "fedcba9876543210"},
            "feature_hash: stored '0123456789abcdef', wanted 'fedcba9876543210'",
        ),
        ({"split": "test"}, "split: stored 'train', wanted 'test'"),
    ],
)
def test_stale_or_foreign_file_is_refused(tmp_path, stale, field):
    """A file under the wanted key's name that was computed for another key (copied, renamed,
    edited) is refused naming the file and the differing field, never used."""
    net = ToyNet(weights_hash=stale.get("feature_hash", "0123456789abcdef"))
    stats = reference_features(ToyNet(), _images(), KEY, tmp_path)
    wanted = full_reference_key(net, {**KEY, **{k: v for k, v in stale.items() if k != "feature_hash"}})
    target = reference_path(tmp_path, wanted)
    os.replace(stats.path, target)
    images = _images(wanted["N"])
    with pytest.raises(ConfigError) as err:
        reference_features(
            net, images, {k: v for k, v in wanted.items() if not k.startswith("feature_")}, tmp_path
        )
    text = str(err.value)
    assert "\n" not in text and str(target) in text and field in text
    assert net.seen == 0
    with pytest.raises(ConfigError, match=field.split(":")[0]):
        load_reference(target, wanted)


def test_bad_keys_and_counts_refused_before_work(tmp_path):
    net = ToyNet()
    with pytest.raises(ConfigError, match="N=12 but 10 images"):
        reference_features(net, _images(), {**KEY, "N": 12}, tmp_path)
    with pytest.raises(ConfigError, match=r"key\.size is a Tensor"):
        reference_features(net, _images(), {**KEY, "size": torch.tensor(4)}, tmp_path)
    with pytest.raises(ConfigError, match="feature_net is 'inception_v3' but the feature net has 'toy'"):
        reference_features(net, _images(), {**KEY, "feature_net": "inception_v3"}, tmp_path)
    assert net.seen == 0 and not any(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="N=12 but the images held 10"):
        reference_features(net, iter([_images()]), {**KEY, "N": 12}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_iterable_of_batches_equals_tensor(tmp_path):
    x = _images()
    whole = reference_features(ToyNet(), x, KEY, tmp_path / "a")
    batches = [(x[i : i + 3], torch.zeros(len(x[i : i + 3]))) for i in range(0, 10, 3)]  # (images, labels)
    streamed = reference_features(ToyNet(), batches, KEY, tmp_path / "b", batch_size=4)
    assert torch.equal(streamed.features, whole.features) and torch.equal(streamed.sigma, whole.sigma)


def test_moments_by_hand():
    mu, sigma = feature_moments(torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 3.0]]))
    assert mu.tolist() == [3.0, 1.0]
    assert sigma.tolist() == [[4.0, 3.0], [3.0, 3.0]]  # Σ (x-μ)(x-μ)ᵀ / (N − 1)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [10, 11])
def test_rank_shares_reassemble_to_one_process_order(world, n):
    x, net = _images(n), ToyNet()
    shares = [rank_share(n, r, world) for r in range(world)]
    assert sorted(torch.cat(shares).tolist()) == list(range(n))
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1
    rows = -(-n // world)  # padded as gather_shares pads them
    padded = [torch.cat([net(x[s]), torch.full((rows - len(s), 5), float("nan"))]) for s in shares]
    torch.testing.assert_close(reassemble(padded, n), net(x), rtol=0, atol=0)


@pytest.mark.parametrize("world", [2, 3])
def test_streamed_shares_are_rank_strided(world):
    """An iterable of uneven batches: rank r's items are exactly images r, r + W, … ."""
    x = _images(11)
    batches = [x[:4], x[4:5], x[5:11]]
    for r in range(world):
        items = list(ref._batches_of_share(batches, r, world, batch_size=2))
        assert items[-1] == 11
        assert torch.equal(torch.cat(items[:-1]), x[r::world])
        assert all(len(b) <= 2 for b in items[:-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo_worker(rank: int, world: int, port: int, folder: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        torch.set_num_threads(1)
        net = ToyNet()
        stats = reference_features(
            net, _images(11), {**KEY, "N": 11}, os.path.join(folder, "cache"), batch_size=2
        )
        torch.save({"features": stats.features, "seen": net.seen}, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_gloo_ranks_equal_one_process(tmp_path):
    """Two real processes (gloo): each computes its share (6 and 5 of 11 images), both return the
    one-process features, and the one file (written by rank 0) equals the one-process file."""
    mp.spawn(_gloo_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    single = reference_features(ToyNet(), _images(11), {**KEY, "N": 11}, tmp_path / "single")
    files = list((tmp_path / "cache").iterdir())
    assert [p.name for p in files] == [single.path.name]
    ddp = load_reference(files[0], single.key)
    assert torch.equal(ddp.features, single.features) and torch.equal(ddp.sigma, single.sigma)
    for rank, seen in ((0, 6), (1, 5)):
        out = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert out["seen"] == seen and torch.equal(out["features"], single.features)
