"""`paper_figures/make_all.py --fast` builds every figure, as PDF and PNG, from tiny runs (~25 s)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every figure script, in a subprocess

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["port_weights", "data_efficiency", "data_efficiency_paired", "sample_grids", "weight_profiles",
           "large_to_small", "bayesian_value", "profiles_and_heads"]


def test_make_all_fast_writes_every_figure(tmp_path, fast_work):
    out = tmp_path / "figures"
    result = subprocess.run([sys.executable, str(ROOT / "paper_figures" / "make_all.py"), "--fast", "--out", str(out)],
                            check=False, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "BAYES_BPS_FAST_WORK": str(fast_work)})
    assert result.returncode == 0, result.stderr[-3000:]
    for name in FIGURES:
        for suffix in (".pdf", ".png"):
            path = out / f"{name}{suffix}"
            assert path.is_file() and path.stat().st_size > 1000, path
