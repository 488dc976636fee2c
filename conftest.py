"""Shared pytest set-up: doctest namespace, offline W&B, quiet Lightning."""

import os

import lightning.pytorch  # noqa: F401  (its log handlers bind to the real stderr, not a test's capsys)
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread per test: the suite's nets are tiny, and two threads on a 2-core machine
    (or a busy one) spin more than they compute (a tiny BatchNorm: 37 µs with one, 93 ms with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
