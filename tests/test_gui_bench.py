"""The explorer's cost, measured: ``gui.bench.measure`` (wired into ``sandbox bench``)."""
from __future__ import annotations

import pytest

from gui.bench import measure
from gui.scenario import IMAGES

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(
    not (IMAGES / "cpuhog.img").is_file() or not (IMAGES / "tinyos.img").is_file(),
    reason="the shipped guests are not built")]


def test_measure_reports_refresh_rate_and_throughput_ratio():
    result = measure(1.0)
    assert result["vms"] == 8
    assert result["headless_mips"] > 0 and result["gui_mips"] > 0
    # The targets are >= 30 refreshes/s and a ratio >= 0.8 (see `sandbox bench`); this is
    # a smoke test on a possibly busy test machine, so it only catches a collapse.
    assert result["gui_fps"] >= 15, result
    assert result["gui_throughput_ratio"] >= 0.4, result
