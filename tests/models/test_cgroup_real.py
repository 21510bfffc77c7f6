"""The CPU model against the real kernel's cgroup v1 CPU controller.

A CPU-bound process runs under ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, and two of them
pinned to one core under ``cpu.shares``; their CPU time is read from /proc. The simulator is
given the same setup (a station of one core, groups with the same quota or weights, jobs that
never finish) and must predict each measured share of a core within 5 points.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.routes import ClosedArrivals, Slot, Source, StationSpec
from virtsim.sim.stations import GroupSpec

pytestmark = pytest.mark.real
CPU_CGROUP = Path("/sys/fs/cgroup/cpu")
WINDOW_S = 3.0


@pytest.fixture
def cgroup_parent():
    """A private parent group under the v1 cpu controller; skipped where it cannot be made."""
    if os.geteuid() != 0 or not (CPU_CGROUP / "cpu.cfs_quota_us").exists():
        pytest.skip("needs root and a cgroup v1 cpu controller at /sys/fs/cgroup/cpu")
    parent = CPU_CGROUP / f"virtsim-test-{uuid.uuid4().hex[:8]}"
    try:
        parent.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup here: {exc}")
    children: list[Path] = []
    procs: list[subprocess.Popen] = []
    yield parent, children, procs
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    for child in children:
        child.rmdir()
    parent.rmdir()


def _group(parent: Path, children: list[Path], name: str, **settings: int) -> Path:
    path = parent / name
    path.mkdir()
    children.append(path)
    for key, value in settings.items():
        (path / key).write_text(str(value))
    return path


def _busy(group: Path, procs: list[subprocess.Popen], core: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    procs.append(proc)
    os.sched_setaffinity(proc.pid, {core})
    (group / "cgroup.procs").write_text(str(proc.pid))
    return proc


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _measure(procs: list[subprocess.Popen]) -> list[float]:
    time.sleep(0.5)  # let them settle into their groups
    start = [_cpu_seconds(p.pid) for p in procs]
    t0 = time.monotonic()
    time.sleep(WINDOW_S)
    wall = time.monotonic() - t0
    return [(_cpu_seconds(p.pid) - s) / wall for p, s in zip(procs, start, strict=True)]


def _predicted_shares(groups: dict[str, GroupSpec]) -> list[float]:
    """Each group's share of one core in the simulator: a closed loop of 10 ms CPU bursts."""
    def work(seed):
        return lambda n: np.full((n, 1), 0.01)

    sources = [Source(name, (Slot("cpu", "app", (name,)),), ClosedArrivals(1), work) for name in groups]
    station = StationSpec("cpu", "shared", 1.0, {(name,): spec for name, spec in groups.items()})
    result = simulate([station], sources, RunControl(duration_s=WINDOW_S * 4))
    return [float(np.sum(~np.isnan(result.logs[name].finish_s))) * 0.01 / (WINDOW_S * 4) for name in groups]


def test_a_cfs_quota_caps_a_cpu_bound_process_as_predicted(cgroup_parent) -> None:
    parent, children, procs = cgroup_parent
    group = _group(parent, children, "quota", **{"cpu.cfs_period_us": 100_000, "cpu.cfs_quota_us": 30_000})
    measured = _measure([_busy(group, procs, core=0)])[0]
    predicted = _predicted_shares({"quota": GroupSpec(quota_s=0.03, period_s=0.1)})[0]
    assert predicted == pytest.approx(0.30, abs=0.01)
    assert abs(measured - predicted) <= 0.05, f"measured {measured:.3f} vs predicted {predicted:.3f}"


def test_cpu_shares_split_a_contended_core_as_predicted(cgroup_parent) -> None:
    parent, children, procs = cgroup_parent
    heavy = _group(parent, children, "heavy", **{"cpu.shares": 2048})
    light = _group(parent, children, "light", **{"cpu.shares": 1024})
    core = max(os.sched_getaffinity(0))
    used = _measure([_busy(heavy, procs, core), _busy(light, procs, core)])
    measured = used[0] / sum(used)  # share of what the two got: robust to other load on the core
    shares = _predicted_shares({"heavy": GroupSpec(weight=2048), "light": GroupSpec(weight=1024)})
    predicted = shares[0] / sum(shares)
    assert predicted == pytest.approx(2 / 3, abs=0.01)
    assert abs(measured - predicted) <= 0.05, f"measured {measured:.3f} vs predicted {predicted:.3f}"
