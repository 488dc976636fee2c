"""The config facts of a per-seed W&B run: what the runs table, the grouping and the filters use.

:func:`run_facts` gives the keys every seed of a fit shares (``study``, ``objective``, ``loss``,
``regularizers``, ``n_critic``, ``data``); the run adds its ``seed`` and ``member``.
:func:`config_facts` takes the optimizers and the data set out of the resolved config, so that
they are top-level config keys (columns of the runs table) and not only inside ``config``.
"""

from __future__ import annotations


def run_facts(model, data: str, study: str | None = None, objective: str | None = None) -> dict:
    """The facts of a fit of ``model`` on data ``data``.

    Args:
        model: a :class:`~gan_lab.module.GANModule` (its ``objective``, ``regularizer_names``, ``n_critic``).
        data: the data's name (``ring8``).
        study: the study's name (None for a plain ``gan-lab fit``).
        objective: the study's label of the run (its ``objective`` column); default: the
            objective's name. ``loss`` is always the objective's registry name.
    """
    return {
        "study": study,
        "objective": objective or model.objective.name,
        "loss": model.objective.name,
        "regularizers": "+".join(model.regularizer_names) or "-",
        "n_critic": int(model.n_critic),
        "data": data,
    }


def member_facts(model) -> list[dict] | None:
    """Each member's own facts in a mixed ensemble (:class:`gan_lab.losses.PerMember`): its
    ``objective`` and ``loss``; None when every member shares the objective.

    >>> from types import SimpleNamespace as M
    >>> member_facts(M(member_objectives=["hinge", "minimax"]))
    [{'objective': 'hinge', 'loss': 'hinge'}, {'objective': 'minimax', 'loss': 'minimax'}]
    >>> member_facts(M(member_objectives=["hinge", "hinge"])) is None
    True
    """
    names = list(model.member_objectives)
    if len(set(names)) < 2:
        return None
    return [{"objective": name, "loss": name} for name in names]


def config_facts(config: dict) -> dict:
    """``optimizer_g``, ``optimizer_d`` and ``dataset`` (class path and init args) of a resolved config.

    >>> cfg = {"model": {"optimizer_g": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-4}}},
    ...        "data": {"class_path": "gan_lab.data.ToyMixtureDataModule", "init_args": {"name": "ring8"}}}
    >>> config_facts(cfg)["optimizer_g"], config_facts(cfg)["dataset"]["init_args"]
    ({'class_path': 'torch.optim.Adam', 'init_args': {'lr': 0.0001}}, {'name': 'ring8'})
    >>> config_facts(cfg)["optimizer_d"] is None
    True
    """
    model = config.get("model") or {}
    return {
        "optimizer_g": model.get("optimizer_g"),
        "optimizer_d": model.get("optimizer_d"),
        "dataset": config.get("data"),
    }
