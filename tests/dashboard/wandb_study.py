"""Facts of the tiny W&B study the tests in this folder share (see conftest.py)."""

from pathlib import Path

from gan_lab.data.toy import ring

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "tests" / "configs" / "tiny_ring8.yaml").read_text()

#: a ring whose modes are wide (std 0.5): a 4-step G already covers modes, so the final metrics
#: (and the W&B summaries compared with them) are finite numbers, not NaN
WIDE = "wide_ring8_test"


def wide_ring():
    """The wide ring (registered only while the tiny study runs: ``MIXTURES.temporarily``)."""
    return ring(8, 1.0, 0.5, name=WIDE)


OBJECTIVES = ("hinge", "least_squares")
SEEDS = (7, 8)
