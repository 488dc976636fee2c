"""The progress bar of a fit counts G steps: ``max_g_steps`` is the total, the module's ``g_steps``
the position (a resumed run starts where it stopped), across Lightning's epochs of step indices.

Lightning's :class:`TQDMProgressBar` counts training batches per epoch: a 200-G-step WGAN-GP fit
(n_critic = 5) showed ``1000/1000``. :func:`use_g_step_progress_bar` swaps Lightning's default bar
for this one (keeping its refresh rate); a bar the user configured is left alone.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar


class GStepProgressBar(TQDMProgressBar):
    """One bar for the whole fit, in G steps (``G steps: 120/200``)."""

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=getattr(pl_module, "max_g_steps", None))
        bar.initial = bar.n = getattr(pl_module, "g_steps", 0)
        bar.set_description("G steps")
        self._shown = bar.n

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the logger's version: the run folder says it
        return metrics

    def on_train_epoch_start(self, trainer, *_) -> None:  # one bar across epochs
        pass

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar, g = self.train_progress_bar, pl_module.g_steps
        if bar is None or bar.disable or g == self._shown:
            return
        if g % self.refresh_rate == 0 or g == bar.total:
            self._shown = bar.n = g
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # the bar stays open across epochs
        pass


def use_g_step_progress_bar(trainer) -> None:
    """Replace Lightning's default :class:`TQDMProgressBar` in ``trainer.callbacks`` by a
    :class:`GStepProgressBar` with the same refresh rate; any other bar (or none) stays."""
    trainer.callbacks = [
        GStepProgressBar(refresh_rate=cb.refresh_rate) if type(cb) is TQDMProgressBar else cb
        for cb in trainer.callbacks
    ]
