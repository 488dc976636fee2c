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
