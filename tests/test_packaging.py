"""Packaging: the wheel holds one top-level package, virtsim, with its data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_only_the_virtsim_package_with_its_data(tmp_path) -> None:
    """Nothing named sim, models or experiments lands in site-packages: they install as
    virtsim.sim, virtsim.models and virtsim.experiments, with the profiles, the shipped
    scenarios and the calibration data beside their code."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path),
                    str(ROOT)], check=True, timeout=600, capture_output=True)
    (wheel,) = tmp_path.glob("virtsim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "virtsim" in tops and all(t == "virtsim" or t.endswith(".dist-info") for t in tops), tops
    for path in ("virtsim/__init__.py", "virtsim/sim/engine.py", "virtsim/models/virt/profiles/kvm.toml",
                 "virtsim/models/hardware/profiles/cpu.toml", "virtsim/experiments/scenarios/compare-stacks.toml",
                 "virtsim/experiments/calibration_data/published.csv"):
        assert path in names, path
