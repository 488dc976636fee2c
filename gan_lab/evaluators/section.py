"""How a study shows one evaluator: its report section (table columns, protocol paragraph, figures)
and its panels in the study's W&B workspace.

An evaluator names its own section: :meth:`ScheduledEvaluator.report_section
<gan_lab.evaluators.base.ScheduledEvaluator.report_section>` returns an
:class:`EvaluatorReport`, this module's base (metrics by name, no protocol, no figures, a line plot
per metric) unless the evaluator returns one of its own (:mod:`gan_lab.evaluators.mode_report`,
:mod:`gan_lab.evaluators.image_report`, :mod:`gan_lab.paired.report`). So the report finds a section
from the evaluator's class, and registering the class in :data:`gan_lab.study.EVALUATORS` is all a
study needs. The sections import nothing of :mod:`gan_lab.study` (the study imports the
evaluators and their sections: one direction, no cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

#: What to do about a damaged study file (the end of every such error line).
REDO = "restore the file, or run the study again (gan-lab study)"


class EvaluatorReport:
    """How a study's report and dashboard show one evaluator. This base is the section of an
    evaluator that names none: its metrics by name, no protocol paragraph, no figures, a line plot
    of each metric in the workspace's :attr:`SECTION`.

    The report names each metric's column ``<NAME>/<metric>`` and its figure files
    ``<NAME>_<figure>.png``; the methods see the rows with the evaluator's metrics under their own
    names (``modes``), never prefixed."""

    #: metric -> (report header, display scale, digits), in table order; empty: every metric by name
    TABLE: ClassVar[dict[str, tuple[str, float, int]]] = {}
    #: metric -> the smallest change (in the metric's units) over the last quarter of training that
    #: counts as "still moving" (:func:`gan_lab.study.report.still_moving`); a metric not listed: 5 %
    #: of its value
    SETTLED: ClassVar[dict[str, float]] = {}
    #: metric -> whether a higher value is better: the verdicts name the better entry by it
    #: (:func:`gan_lab.study.verdicts.direction`); a metric not listed is compared without "better"
    HIGHER_IS_BETTER: ClassVar[dict[str, bool]] = {}
    #: metric -> (phrase of a higher value, of a lower one), where the verdicts' "has a higher
    #: <header> than" reads badly (``"covers more modes than"``)
    PHRASES: ClassVar[dict[str, tuple[str, str]]] = {}
    #: the section of the study's W&B workspace (``gan-lab dashboard``) that shows the metrics
    SECTION: ClassVar[str] = "image metrics"

    def table(self, metrics: Sequence[str], info: dict | None = None) -> dict[str, tuple[str, float, int]]:
        """The table's columns for an evaluator of ``metrics`` with the facts ``info`` (a report may
        name a column after them, or leave out a metric they make undefined)."""
        return dict(self.TABLE) or {m: (m, 1.0, 3) for m in metrics}

    def protocol(self, info: dict) -> str:
        """The paragraph that states the evaluation protocol, from the evaluator's ``info``.

        Raises:
            KeyError, TypeError, ValueError: ``info`` does not fit the evaluator (a damaged file).
        """
        return ""

    def notes(self, results: Sequence[dict], info: dict) -> str:
        """A paragraph the report prints after the evaluator's table, generated from the final rows
        (``results``, the evaluator's metrics under their own names) and its facts ``info`` (the
        stacked-digits section says when most samples are not recognised as digits); default none."""
        return ""

    def check_files(self, runs: list[tuple[str, Path]]) -> None:
        """Refuse (one-line :class:`~gan_lab.errors.ConfigError`) a file of the run folders that
        :meth:`figures` would read and could not; the report checks them before anything is written.
        ``runs``: ``(label, run folder)`` of each configuration."""

    def figures(
        self, study_dir: Path, runs: list[tuple[str, Path]], results, history, info, file_prefix: str = ""
    ) -> list[tuple[str, str]]:
        """Draw the evaluator's figures into ``study_dir`` (file names starting ``file_prefix``);
        return ``(caption, file name)`` pairs. ``runs``: ``(label, run folder)`` of each
        configuration; ``results`` / ``history``: the rows, with the evaluator's metrics under their
        own names."""
        return []

    def panels(self, name: str, metrics: Sequence[str], logged: set[str]) -> list[tuple[str, dict]]:
        """The study's W&B workspace panels, ``(section, panel)``: a line plot of each metric that
        the study's runs logged (``<name>/<metric>``) in :attr:`SECTION`.

        >>> EvaluatorReport().panels("sr", ["psnr", "ssim"], {"sr/psnr"})
        [('image metrics', {'kind': 'line', 'key': 'sr/psnr'})]
        """
        keys = [f"{name}/{m}" for m in metrics]
        return [(self.SECTION, {"kind": "line", "key": k}) for k in keys if k in logged]
