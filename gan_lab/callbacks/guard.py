"""Divergence guard: no optimizer step with a non-finite gradient reaches the weights.

Where it acts: in manual optimization ``opt.step()`` is Lightning's ``LightningOptimizer.step``,
which runs every callback's ``on_before_optimizer_step(trainer, pl_module, optimizer)`` after the
backward pass and *before* ``optimizer.step()``. The guard checks there whether any gradient of that
optimizer's parameters holds a NaN or an inf, beside the step and without changing the module:

- ``policy="skip"``: set every ``p.grad = None`` of that optimizer, so that ``optimizer.step()``
  leaves those parameters alone (torch's Adam skips parameters without a gradient entirely: no
  moment update, no step count, no weight decay). The skip is counted and logged
  (``guard/skipped``, ``guard/consecutive``); after ``max_consecutive`` consecutive skipped steps of
  one player (D or G, counted by the module's ``d_steps`` / ``g_steps``), :class:`TrainingDiverged`
  is raised.
- ``policy="stop"``: raise :class:`TrainingDiverged` at once.

The message names the player, its step counter, the non-finite loss terms (when the module keeps
them in ``last_losses``; "a non-finite gradient" otherwise) and the last good checkpoint. Nothing is
saved on the way out: a ``ModelCheckpoint(save_on_exception=True)`` is switched off for this
exception so that it does not replace ``last.ckpt`` with the state of the failing step.
(Lightning's separate ``OnExceptionCheckpoint`` writes its own file and is not stopped.)

Cost: one reduction over the gradients (the max-abs norm, ``torch.nn.utils.get_total_norm``) and
one host sync (``.item()``) per optimizer step, a few microseconds on a small net; on a GPU the
sync stalls the launch queue once per step.

What it does not undo: buffers changed by the forward pass of the failing step (BatchNorm running
statistics) and anything the module does after ``opt.step()`` (weight clipping, the ``G_ema``
update, which then averages unchanged weights).

Under 16-mixed precision with a GradScaler, non-finite gradients are first the scaler's business:
it skips such steps itself and lowers the scale. The guard then only counts them and leaves the
gradients alone (a fused optimizer's scaler finds the inf in them at its step; cleared, it would
find nothing to check), ``policy`` has no effect unless the module reports a non-finite loss term,
and it raises after ``max_consecutive`` consecutive ones, which no healthy loss scale produces.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from gan_lab.errors import check_choice, check_int
from gan_lab.module import term_means

POLICIES = ("skip", "stop")


class TrainingDiverged(RuntimeError):
    """Training produced non-finite gradients; the message says where and what to resume from."""


class DivergenceGuard(Callback):
    """Skip (or stop at) optimizer steps whose gradients hold NaN or inf.

    Args:
        policy: ``"skip"`` (drop the update and carry on) or ``"stop"`` (raise at once).
        max_consecutive: with ``"skip"``, raise after this many consecutive skipped steps of the
            same player.

    Attributes:
        skipped: skipped optimizer steps so far, per player (``{"D": 2, "G": 0}``).
        events: one dict per non-finite step: ``player``, ``step``, ``terms``, ``action``.
    """

    def __init__(self, policy: str = "skip", max_consecutive: int = 10) -> None:
        super().__init__()
        check_choice("DivergenceGuard policy", policy, POLICIES, plural="policies")
        check_int("DivergenceGuard max_consecutive", max_consecutive)
        self.policy, self.max_consecutive = policy, max_consecutive
        self.skipped: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []
        self._consecutive: dict[str, int] = {}
        self._last_bad_step: dict[str, int] = {}
        self._calls: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------
    # Which player, which step, which terms
    # ------------------------------------------------------------------------------------------

    @staticmethod
    def player_of(trainer, pl_module, optimizer) -> str:
        """``"G"`` or ``"D"``: by the parameters the optimizer holds when the module has ``G`` and
        ``D``, else by position in ``trainer.optimizers`` (GANModule returns ``[opt_g, opt_d]``)."""
        first = next((p for group in optimizer.param_groups for p in group["params"]), None)
        for name in ("G", "D"):
            net = getattr(pl_module, name, None)
            if (
                first is not None
                and isinstance(net, torch.nn.Module)
                and any(p is first for p in net.parameters())
            ):
                return name
        optimizers = list(getattr(trainer, "optimizers", None) or [])
        for i, opt in enumerate(optimizers):
            if opt is optimizer or getattr(opt, "optimizer", None) is optimizer:  # LightningOptimizer
                return ("G", "D")[i] if len(optimizers) == 2 else f"optimizer {i}"
        return "an unknown optimizer"

    def _step_of(self, pl_module, player: str) -> int:
        """The player's step counter (the module's ``d_steps`` / ``g_steps``: updates completed
        before this one), or the guard's own count of that optimizer's steps."""
        counter = {"D": "d_steps", "G": "g_steps"}.get(player)
        value = getattr(pl_module, counter, None) if counter else None
        return int(value) if isinstance(value, int) else self._calls.get(player, 0)

    @staticmethod
    def nonfinite_terms(pl_module, player: str) -> list[str] | None:
        """``["d/loss=nan", ...]`` from the module's ``last_losses`` (the loss terms of the step
        being taken) for this player, or None when the module does not keep them."""
        losses = getattr(pl_module, "last_losses", None)
        if not isinstance(losses, dict):
            return None
        prefix = f"{player.lower()}/"
        out = []
        for name, value in term_means(losses).items():
            if not str(name).startswith(prefix):
                continue
            v = torch.as_tensor(value).detach().float()
            if not bool(torch.isfinite(v)):
                out.append(f"{name}={v.item()}")
        return out

    @staticmethod
    def last_good_checkpoint(trainer) -> str:
        cb = getattr(trainer, "checkpoint_callback", None)
        for attr in ("last_model_path", "best_model_path"):
            path = getattr(cb, attr, "") if cb is not None else ""
            if path and os.path.exists(path):
                return path
        return "no checkpoint yet"

    # ------------------------------------------------------------------------------------------
    # The check
    # ------------------------------------------------------------------------------------------

    @staticmethod
    def grads_finite(optimizer) -> bool:
        """Whether every gradient of the optimizer's parameters is finite (one host sync)."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return True
        # max |g| over all gradients: NaN if any NaN, inf if any inf (max propagates NaN).
        total = torch.nn.utils.get_total_norm(grads, norm_type=math.inf, foreach=None)
        return bool(torch.isfinite(total).item())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        player = self.player_of(trainer, pl_module, optimizer)
        self._calls[player] = self._calls.get(player, 0) + 1
        if self.grads_finite(optimizer):
            return
        step = self._step_of(pl_module, player)
        terms = self.nonfinite_terms(pl_module, player)
        scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)

        # Consecutive in the player's own steps (a D step with a lazy penalty counts once).
        if self._last_bad_step.get(player) != step:
            previous = self._last_bad_step.get(player)
            self._consecutive[player] = self._consecutive.get(player, 0) + 1 if previous == step - 1 else 1
            self._last_bad_step[player] = step
        consecutive = self._consecutive[player]

        stop_now = self.policy == "stop" and (scaler is None or bool(terms))
        self.events.append(
            {"player": player, "step": step, "terms": terms, "action": "stop" if stop_now else "skip"}
        )
        if stop_now:
            raise TrainingDiverged(self._message(trainer, pl_module, player, step, terms))
        if scaler is None:  # a GradScaler skips the step itself: its inf check needs the gradients
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
        self.skipped[player] = self.skipped.get(player, 0) + 1
        pl_module.log_dict(
            {"guard/skipped": float(sum(self.skipped.values())), "guard/consecutive": float(consecutive)},
            on_step=True,
            on_epoch=False,
            batch_size=1,
        )
        if consecutive >= self.max_consecutive:
            raise TrainingDiverged(self._message(trainer, pl_module, player, step, terms, consecutive))

    def _message(self, trainer, pl_module, player, step, terms, consecutive: int | None = None) -> str:
        counter = {"D": "d_steps", "G": "g_steps"}.get(player, "step")
        what = f"non-finite loss terms {', '.join(terms)}" if terms else "a non-finite gradient"
        if consecutive is None:
            where = f"{what} in {player}'s update at {counter}={step} (policy 'stop')"
        else:
            where = (
                f"{what} in {player}'s update at {counter}={step}: {consecutive} consecutive {player} "
                f"updates skipped ({counter}={step - consecutive + 1}..{step}, max_consecutive="
                f"{self.max_consecutive})"
            )
        return (
            f"training diverged: {where}; last good checkpoint: {self.last_good_checkpoint(trainer)} "
            "(nothing was saved after the failure)"
        )

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Callbacks run in order and Lightning puts checkpoint callbacks last: switch off their
        # save-on-exception before they see this one, so the last good checkpoint stays as it is.
        if isinstance(exception, TrainingDiverged):
            for cb in getattr(trainer, "checkpoint_callbacks", []):
                if isinstance(cb, ModelCheckpoint) and getattr(cb, "save_on_exception", False):
                    cb.save_on_exception = False

    # ------------------------------------------------------------------------------------------
    # Checkpointed counters
    # ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"skipped": dict(self.skipped)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = {str(k): int(v) for k, v in state_dict.get("skipped", {}).items()}
