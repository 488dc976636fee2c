"""Shared pytest set-up: doctest namespace, offline W&B, quiet Lightning, the lab's cache in a tmp folder."""

import os

import lightning.pytorch  # noqa: F401  (its log handlers bind to the real stderr, not a test's capsys)
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session", autouse=True)
def _lab_cache(tmp_path_factory):
    """The lab's cache (the digit classifier, reference features) in a folder of this session, never
    in ~/.cache: trained once per session, shared by every test (and the studies' worker processes)."""
    old = os.environ.get("GAN_LAB_CACHE")
    os.environ["GAN_LAB_CACHE"] = str(tmp_path_factory.mktemp("gan_lab_cache"))
    yield
    if old is None:
        os.environ.pop("GAN_LAB_CACHE", None)
    else:
        os.environ["GAN_LAB_CACHE"] = old


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
