"""Fabricated image data sets in the files torchvision reads with ``download=False`` (MNIST IDX
files, CIFAR-10 pickles with torchvision's md5 lists set to them, PNG folders), shared by the data,
study and metrics tests. Image ``i`` carries its index in pixel (0, 0)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision.io import write_png

from gan_lab.data.images import MNIST_FILES


def indexed_images(n: int, c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 (n, c, h, w) random pixels, with image i's pixel (0, 0) of every channel = i."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)
    x[:, :, 0, 0] = np.arange(n, dtype=np.uint8)[:, None]
    return x


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (big-endian dims, uint8 type 0x08) as MNIST's are."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 12, n_test: int = 5):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    train, test = indexed_images(n_train, 1, 28, 28, 1)[:, 0], indexed_images(n_test, 1, 28, 28, 2)[:, 0]
    test[:, 0, 0] += 100  # test images are told apart from training ones
    y_train, y_test = np.arange(n_train) % 10, (np.arange(n_test) + 3) % 10
    for name, array in zip(MNIST_FILES, (train, y_train, test, y_test)):
        write_idx(raw / name, array)
    return (
        torch.from_numpy(train).unsqueeze(1),
        torch.from_numpy(y_train),
        torch.from_numpy(test).unsqueeze(1),
    )


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar(
    root: Path, monkeypatch, per_batch: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Five training batches and a test batch of ``per_batch`` images each (CIFAR-10's pickles:
    ``data`` (n, 3072) rows of R, G, B planes, ``labels``), and torchvision's md5 lists set to them."""
    from torchvision.datasets import CIFAR10

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    x = indexed_images(6 * per_batch, 3, 32, 32, 3)
    y = np.arange(6 * per_batch) % 10
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        part = slice(k * per_batch, (k + 1) * per_batch)
        entry = {"data": x[part].reshape(per_batch, -1), "labels": y[part].tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{k}" for k in range(10)]}))
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(folder / n)] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    meta = {"filename": "batches.meta", "key": "label_names", "md5": md5(folder / "batches.meta")}
    monkeypatch.setattr(CIFAR10, "meta", meta)
    n = 5 * per_batch
    return torch.from_numpy(x[:n]), torch.from_numpy(y[:n]), torch.from_numpy(x[n:])


def write_folder(root: Path, images: np.ndarray, classes: list[str] | None = None) -> list[Path]:
    """PNG files, flat (``img00.png`` ...) or in class sub-folders (image i in ``classes[i % K]``)."""
    paths = []
    for i, img in enumerate(images):
        sub = root / classes[i % len(classes)] if classes else root
        sub.mkdir(parents=True, exist_ok=True)
        paths.append(sub / f"img{i:02d}.png")
        write_png(torch.from_numpy(img), str(paths[-1]))
    return paths
