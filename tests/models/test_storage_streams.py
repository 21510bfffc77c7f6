"""One operation's transfer rate (``op_bandwidth``): a single stream at queue depth 1 gets only that
rate, several operations in flight share the device's ``bandwidth``."""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.experiments.scenario import parse_scenario
from virtsim.models.hardware.storage import StorageSpec
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import simulate_kernel

MIB = 2**20
DEVICE = {"profile": "nvme-ssd", "latency_sigma": 0, "seq_latency": "20us", "bandwidth": "3GB/s"}


def _reads(storage: dict, clients: int, engine) -> tuple[float, float]:
    """Mean latency (s) and throughput (reads/s) of ``clients`` closed loops of 1 MiB sequential
    reads and nothing else (no CPU, no think time) on bare metal."""
    scenario = parse_scenario({
        "name": "stream", "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": storage},
        "run": {"duration": "0.2s", "warmup": "0.02s", "replications": 1, "seed": 4},
        "guests": [{"name": "g", "stack": ["bare-metal"], "workload": {
            "arrivals": {"kind": "closed", "clients": clients},
            "demands": [{"kind": "io", "op": "read", "pattern": "seq", "size": "1MiB"}]}}],
    })
    stations, sources = scenario.system().engine_inputs()
    log = engine(stations, sources, scenario.run.control(), 0).logs["g"]
    window = (log.arrival_s >= 0.02) & ~np.isnan(log.finish_s)
    done = ((log.finish_s >= 0.02) & (log.finish_s < 0.2)).sum() / 0.18
    return float((log.finish_s - log.arrival_s)[window].mean()), float(done)


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_one_stream_at_queue_depth_one_moves_at_the_operation_rate(engine) -> None:
    """By hand: a 1 MiB read takes the 20 us access, then 1 MiB at 1.5 GB/s (699.05 us) alone,
    where with ``op_bandwidth`` at the device's 3 GB/s it moves at that (349.53 us)."""
    latency, _ = _reads({**DEVICE, "op_bandwidth": "1.5GB/s"}, 1, engine)
    assert latency == pytest.approx(20e-6 + MIB / 1.5e9, rel=1e-9)
    latency, _ = _reads({**DEVICE, "op_bandwidth": "3GB/s"}, 1, engine)
    assert latency == pytest.approx(20e-6 + MIB / 3e9, rel=1e-9)


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_streams_in_flight_share_the_device_bandwidth(engine) -> None:
    """Two streams at 1 GB/s each on a 3 GB/s device do not fill it: each read takes 20 us + 1 MiB
    at 1 GB/s (1.0486 ms), 2 / 1.0686 ms = 1,871.6 reads/s (1.96 GB/s). Sixteen streams fill
    it: 3 GB/s / 1 MiB = 2,861 reads/s, so by Little's law the mean latency is 16 / 2,861 s =
    5.59 ms; three transfers run at once at 1 GB/s each, in order, the others wait: a read
    spends 1.0486 ms in transfer and the rest waiting for one."""
    device = {**DEVICE, "op_bandwidth": "1GB/s"}
    _, rate = _reads(device, 2, engine)
    assert rate == pytest.approx(2 / (20e-6 + MIB / 1e9), rel=0.01)
    latency, rate = _reads(device, 16, engine)
    assert rate == pytest.approx(3e9 / MIB, rel=0.01)
    assert latency == pytest.approx(16 / (3e9 / MIB), rel=0.02)


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_transfers_beyond_the_device_parallelism_wait_in_order(engine) -> None:
    """1.75 GB/s per operation on 3 GB/s: two transfers at once (ceil(3 / 1.75)), 1.5 GB/s each.
    Eight streams of equal reads then finish two by two, evenly spread in time, not all together
    in waves as under processor sharing of all eight: the gaps between completions are 2 MiB /
    3 GB/s = 699 us apart in pairs."""
    device = {**DEVICE, "op_bandwidth": "1.75GB/s"}
    scenario = parse_scenario({
        "name": "stream", "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": device},
        "run": {"duration": "0.05s", "warmup": "0s", "replications": 1, "seed": 4},
        "guests": [{"name": "g", "stack": ["bare-metal"], "workload": {
            "arrivals": {"kind": "closed", "clients": 8},
            "demands": [{"kind": "io", "op": "read", "pattern": "seq", "size": "1MiB"}]}}],
    })
    stations, sources = scenario.system().engine_inputs()
    log = engine(stations, sources, scenario.run.control(), 0).logs["g"]
    finish = np.sort(log.finish_s[~np.isnan(log.finish_s)])
    pairs = np.diff(finish[1::2])[4:]  # in steady state: one pair per 2 MiB at 3 GB/s
    assert pairs == pytest.approx(2 * MIB / 3e9, rel=1e-6)


def test_an_operation_is_never_faster_than_its_device() -> None:
    """A device made slower than one operation's rate (a sweep of ``bandwidth`` on an NVMe profile)
    moves each operation at the device's rate, one at a time, as a device without the limit."""
    slow = StorageSpec.model_validate({"bandwidth": "1GB/s", "op_bandwidth": "2GB/s"})
    assert slow.op_rate_Bps == 1e9 and slow.transfer_s(np.asarray(1e9)) == 1.0
    assert [s.kind for s in slow.stations()] == ["fifo", "fifo"]


def test_an_operation_rate_that_would_need_endless_transfers_is_refused() -> None:
    """Review 13: op_bandwidth = "1e-20B/s" overflowed counting the transfers (a traceback)."""
    with pytest.raises(ValueError, match=r"op_bandwidth .* is below bandwidth / 1024"):
        StorageSpec.model_validate({"bandwidth": "1GB/s", "op_bandwidth": "1e-20B/s"})
    StorageSpec.model_validate({"bandwidth": "1GB/s", "op_bandwidth": "1MB/s"})  # 1,000 at once: allowed
