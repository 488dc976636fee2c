"""``python -m benchmarks.prdc_memory``: one small run in a fresh process reports its memory and the
same metric values as :func:`gan_lab.metrics.prdc.prdc` in this one."""

import json

import pytest
import torch

from benchmarks.prdc_memory import main
from gan_lab.metrics.prdc import prdc


def test_a_small_measurement_reports_memory_and_the_metrics(capsys):
    assert main(["--n-real", "300", "--n-fake", "200", "--d", "8", "--chunk", "64", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out)  # measure_prdc_memory's dict
    assert result["seconds"] > 0 and result["rss_peak_mib"] >= result["rss_before_mib"] > 0
    assert result["inputs_mib"] == pytest.approx(500 * 8 * 4 / 2**20)
    assert "gpu_peak_mib" not in result  # CPU only
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(300, 8, generator=g), torch.randn(200, 8, generator=g) + 0.1
    for name, value in prdc(real, fake, chunk=64).items():
        assert result[name] == pytest.approx(value.item()), name
