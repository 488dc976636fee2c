"""What a command prints: gan_lab's own lines on stderr (global rank 0 only), and Lightning and
W&B kept to what the user needs (no banners, advertising tips or warnings about unused packages)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from lightning.pytorch.utilities import rank_zero_only

#: warnings of Lightning and torch that say nothing about the user's run
_NOISE = (
    r".*`tensorboardX` has been removed as a dependency",  # the lab replaces the default logger
    r".*LeafSpec.*is deprecated",  # Lightning's own use of torch's pytree
    r".*Previous log files in this directory will be deleted",  # see gan_lab.runs.RunCSVLogger
    r".*does not have many workers",  # the toy data is drawn on the device, no loader workers
    r".*GPU available but not used",
    # A resumed run continues in its own folder (gan_lab.runs): its checkpoints folder is not empty.
    r"Checkpoint directory .* exists and is not empty",
    # A branch or a checkpoint from elsewhere continues in a new folder: the old folder's top-k
    # bookkeeping rightly stays behind.
    r"The dirpath has changed from .* won't be reloaded",
    # The lab's training loaders are step indices whose batches are drawn from streams restored
    # from the checkpoint (gan_lab.data.steps): no batch depends on the position in the "epoch".
    r".*resuming from a checkpoint that ended before the epoch ended and your dataloader is not resumable",
)


@rank_zero_only
def say(message: str) -> None:
    """Print one of gan_lab's own lines to stderr (rank 0 of a DDP run only)."""
    print(message, file=sys.stderr, flush=True)


def quiet_lightning() -> None:
    """Lightning's banners and tips (INFO on its rank-zero loggers) off, its noise warnings
    filtered, W&B silent unless ``WANDB_SILENT`` says otherwise. Warnings about the run itself stay."""
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.trainer.connectors.checkpoint_connector",  # "`weights_only` was not set"
        "lightning.fabric.utilities.seed",  # "Seed set to N" (the seed is in the saved config)
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)
    os.environ.setdefault("WANDB_SILENT", "true")
