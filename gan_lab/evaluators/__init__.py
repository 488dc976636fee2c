"""Evaluators: callbacks that score G on a schedule of G steps, each with the report section that
shows it in a study (:mod:`gan_lab.evaluators.section`).

An evaluator is one plug-in: its class (:class:`~gan_lab.evaluators.base.ScheduledEvaluator`: the
schedule, the computation, the logging) names its report section, and one line registers it in
:data:`gan_lab.study.EVALUATORS`. Nothing here imports :mod:`gan_lab.study`: the study finds the
evaluators, never the other way round.
"""

from gan_lab.evaluators.base import ScheduledEvaluator
from gan_lab.evaluators.image import ImageMetricsEvaluator
from gan_lab.evaluators.mode import ModeCoverageEvaluator
from gan_lab.evaluators.section import EvaluatorReport
from gan_lab.evaluators.stacked import StackedModeEvaluator

__all__ = [
    "EvaluatorReport",
    "ImageMetricsEvaluator",
    "ModeCoverageEvaluator",
    "ScheduledEvaluator",
    "StackedModeEvaluator",
]
