"""Guards of the private Lightning / torch / W&B attributes gan_lab still uses (README,
"Development"): each test fails when the attribute stops meaning what gan_lab takes it to mean,
so that the use is revisited, not silently broken."""

import inspect

import lightning as L
import pytest
import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.strategies import DDPStrategy


def test_logger_connector_should_update_logs_follows_log_every_n_steps():
    """gan_lab.step_logs.log_step logs only when `trainer._logger_connector.should_update_logs`: during a
    fit, true on every log_every_n_steps-th batch."""
    from lightning.pytorch.callbacks import Callback

    from gan_lab.data import ToyMixtureDataModule
    from gan_lab.module import GANModule
    from gan_lab.nets import ToyDiscriminator, ToyGenerator

    flags = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, *args):
            flags.append(trainer._logger_connector.should_update_logs)

    trainer = L.Trainer(
        log_every_n_steps=3,
        limit_train_batches=6,
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    module = GANModule(
        ToyGenerator(members=1, hidden=4, layers=1), ToyDiscriminator(members=1, hidden=4, layers=1)
    )
    trainer.fit(module, ToyMixtureDataModule("ring8", batch_size=4))
    assert flags == [False, False, True, False, False, True]


def test_lightning_cli_still_parses_ckpt_path_through_the_overridden_method():
    """gan_lab.fit overrides LightningCLI._parse_ckpt_path (which would replace the config given
    with the checkpoint's hyper-parameters); the override only works while __init__ calls it."""
    assert "self._parse_ckpt_path()" in inspect.getsource(LightningCLI.__init__)


def test_ddp_strategy_keeps_its_kwargs_start_method_and_layer_sync():
    """gan_lab.checks.check_trainer reads `_ddp_kwargs` (find_unused_parameters), `_start_method`
    (to name the strategy to use) and `_layer_sync` (SyncBatchNorm)."""
    strategy = DDPStrategy(find_unused_parameters=True, start_method="spawn")
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    assert strategy._start_method == "spawn"
    assert DDPStrategy()._layer_sync is None
    trainer = L.Trainer(
        strategy=DDPStrategy(), sync_batchnorm=True, accelerator="cpu", devices=1, logger=False
    )
    assert trainer.strategy._layer_sync is not None


def test_fused_optimizers_still_declare_that_they_unscale_in_their_step():
    """gan_lab.optim.clip_unscaled_ unscales a fused optimizer's gradients itself when the
    optimizer's `_step_supports_amp_scaling` says its step would do it."""
    p = torch.nn.Parameter(torch.zeros(2))
    assert getattr(torch.optim.Adam([p], fused=True), "_step_supports_amp_scaling", False) is True
    assert not getattr(torch.optim.Adam([p]), "_step_supports_amp_scaling", False)


@pytest.mark.parametrize("attribute", ["_experiment"])
def test_csv_logger_holds_its_writer_in_experiment(tmp_path, attribute):
    """gan_lab.runs.RunCSVLogger reads `CSVLogger._experiment` and sets the writer's `metrics_keys`."""
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path)
    assert getattr(logger, attribute) is None
    writer = logger.experiment
    assert getattr(logger, attribute) is writer and isinstance(writer.metrics_keys, list)


def test_wandb_builds_sweep_arguments_as_the_agent_does():
    """tests/dashboard/test_sweeps.py expands a sweep's ``${args}`` with wandb's own
    ``create_sweep_command_args`` (public name, deep in wandb's SDK): ``--key=value`` per parameter."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    args = create_sweep_command_args({"args": {"model.n_critic": {"value": 5}, "a.b": {"value": 0.5}}})[
        "args"
    ]
    assert sorted(args) == ["--a.b=0.5", "--model.n_critic=5"]


def test_wandb_leet_inspect_reads_an_offline_run_as_json_lines(tmp_path, monkeypatch):
    """tests/wandb_offline.py reads offline runs with ``wandb leet inspect --json`` (wandb 0.31 has
    no Python reader): one JSON object per record, the run's config and history among them."""
    import wandb
    from wandb_offline import inspect_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(dir=str(tmp_path), project="guard", config={"objective": "hinge"}, reinit="create_new")
    run.log({"x": 1.5, "g_steps": 3})
    run.finish()
    (path,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    record = inspect_run(path)
    assert record["config"]["objective"] == "hinge"
    assert any(row.get("x") == 1.5 for row in record["history"])


def test_torch_dispatch_mode_sees_every_aten_op_forward_and_backward():
    """tests/test_streams.py counts the ops of a training step with the private
    `torch.utils._python_dispatch.TorchDispatchMode`: each aten op (forward, and backward on the
    calling thread on CPU) reaches `__torch_dispatch__` once, with `func` an OpOverload."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    x = torch.ones(3, requires_grad=True)
    with Record():
        (x * 2).sum().backward()
    assert torch.ops.aten.mul.Tensor in seen and torch.ops.aten.sum.default in seen
    assert len(seen) >= 4  # mul, sum, and the backward's ops
    assert torch.equal(x.grad, torch.full((3,), 2.0))


def test_lightning_cli_keeps_its_subcommand_parsers_by_name(capsys):
    """gan_lab.fit names the keys close to an unknown ``--key`` from LightningCLI's
    ``_subcommand_parsers["fit"]`` (the main parser holds only ``config`` and ``subcommand``):
    without it the suggestion would silently go."""
    from gan_lab.cli import main

    assert main(["fit", "--model.max_g_step=3"]) == 2
    assert "(did you mean --model.max_g_steps?)" in capsys.readouterr().err


def test_lightnings_csv_writer_rewrites_a_new_header_through_its_hook(tmp_path, monkeypatch):
    """gan_lab.runs.RunExperimentWriter overrides ``_check_log_dir_exists`` (Lightning deletes an
    existing metrics.csv there; the crash-safety tests cover it) and ``_rewrite_with_new_header``
    (a new column rewrites the file: whole, via gan_lab.files.write_whole). If Lightning stopped
    calling the second, the rewrite would silently be its own, not whole."""
    import gan_lab.runs
    from gan_lab.runs import RunExperimentWriter

    calls = []
    real = gan_lab.runs.write_whole
    monkeypatch.setattr(
        gan_lab.runs, "write_whole", lambda path, data: calls.append(path) or real(path, data)
    )
    writer = RunExperimentWriter(str(tmp_path))
    writer.log_metrics({"a": 1.0}, step=1)
    writer.save()
    writer.log_metrics({"a": 2.0, "b": 3.0}, step=2)  # a new column
    writer.save()
    assert [str(p) for p in calls] == [str(tmp_path / "metrics.csv")]
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["a,b,step", "1.0,,1", "2.0,3.0,2"]


def test_lightning_cli_gives_a_subcommands_parser_by_name():
    """gan_lab.fit dumps the resolved config of a fit (kept in every checkpoint, compared by a
    resume) with ``LightningCLI._parser("fit")``, the subcommand's own parser."""
    from lightning.pytorch.cli import LightningCLI
    from tiny_fit import TINY_RING8

    from gan_lab.fit import build_cli

    cli = build_cli([*TINY_RING8, "--trainer.logger=false", "--model.max_g_steps=1"], run=False)
    assert callable(getattr(LightningCLI, "_parser", None))
    assert cli._parser(None) is cli.parser  # without subcommands: the one parser


def test_lightning_optimizer_gives_its_optimizer_through_the_public_property():
    """gan_lab.callbacks.guard matches the optimizer a hook names with the trainer's
    LightningOptimizer wrappers through the public ``LightningOptimizer.optimizer``."""
    from lightning.pytorch.core.optimizer import LightningOptimizer

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert LightningOptimizer(opt).optimizer is opt


def test_foreach_lerp_is_lerp_on_every_tensor():
    """gan_lab.nets.ema updates G_ema with ``torch._foreach_lerp_`` (one op for all parameters, as
    torch's own ``get_ema_multi_avg_fn``): the same numbers as ``torch.lerp`` per tensor."""
    gen = torch.Generator().manual_seed(0)
    ema = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    params = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    expected = [torch.lerp(e, p, 0.25) for e, p in zip(ema, params)]
    torch._foreach_lerp_(ema, params, 0.25)
    assert all(torch.equal(a, b) for a, b in zip(ema, expected))
