"""The arguments of a tiny ring8 fit on the base config, shared by the tests that run `gan-lab fit`
as a user would: 2 members, 8-unit nets of 2 layers, batch 16."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: `--config` of the base ring8 config, then the overrides that make it tiny
TINY_RING8 = [
    f"--config={ROOT / 'experiments/toy/ring8.yaml'}",
    "--model.generator.init_args.members=2",
    "--model.generator.init_args.hidden=8",
    "--model.generator.init_args.layers=2",
    "--model.discriminator.init_args.members=2",
    "--model.discriminator.init_args.hidden=8",
    "--model.discriminator.init_args.layers=2",
    "--data.init_args.batch_size=16",
]


def training_steps(metrics_csv) -> list[int]:
    """The `step` (G steps) of every training row of a metrics.csv (the module logs `d_steps` in
    each; the evaluators' rows, logged at their own G steps, do not)."""
    import csv

    with open(metrics_csv, newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("d_steps")]


def quiet_trainer(batches: int, callbacks=()):
    """A CPU Trainer for ``batches`` batches of one epoch: no logger, checkpoint, bar or summary."""
    import lightning as L

    return L.Trainer(
        max_steps=-1,
        limit_train_batches=batches,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
