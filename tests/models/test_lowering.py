"""Each layer's lowering adds what it claims, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from models.demands import Demand
from models.hardware.host import HostSpec
from models.hardware.memory import walk_refs
from models.virt.stack import Stack, make_layer

HOST = HostSpec()
N = 4


def _app_demands() -> list[Demand]:
    return [
        Demand("net_in", np.full(N, 300.0)),
        Demand("cpu", np.full(N, 1e6)),
        Demand("mem", np.full(N, 8192.0), pattern="random"),
        Demand("io", np.array([4096.0, 0.0, 4096.0, 4096.0]), op="read", pattern="random"),
        Demand("net_out", np.full(N, 100_000.0)),  # two 64 KiB offload segments
    ]


def _stages(profiles: list[str] | Stack):
    stack = profiles if isinstance(profiles, Stack) else Stack.of(profiles)
    return stack.lower(_app_demands(), stack.contexts("g", HOST), HOST)


def _by_layer(stages) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in stages:
        out.setdefault(s.layer, []).append(s)
    return out


def _total(stages, station: str | None = None) -> np.ndarray:
    return sum((s.work_s for s in stages if station is None or s.station == station), np.zeros(N))


def test_bare_metal_adds_nothing() -> None:
    stages = _stages(["bare-metal"])
    direct = [s for d in _app_demands() for s in HOST.lower(d)]
    assert [(s.station, s.layer) for s in stages] == [(s.station, s.layer) for s in direct]
    for a, b in zip(stages, direct, strict=True):
        np.testing.assert_array_equal(a.work_s, b.work_s)
    assert set(_by_layer(stages)) == {"app"}


def test_container_with_host_networking_adds_no_network_stage() -> None:
    stages = _stages(["docker"])
    added = _by_layer(stages)["docker"]
    assert {s.station for s in added} == {"cpu"}  # only the overlay lookup per I/O
    overlay = make_layer("docker").params.overlay_io_cycles
    np.testing.assert_allclose(_total(added), np.array([1, 0, 1, 1]) * overlay / HOST.cpu.freq_hz)
    app = [s for s in stages if s.layer == "app"]
    assert [s.station for s in app] == [s.station for s in _stages(["bare-metal"])]


def test_container_bridge_and_nat_add_their_per_packet_stages() -> None:
    nat = _by_layer(_stages(["docker-nat"]))["docker-nat"]
    p = make_layer("docker-nat").params
    packets = 1 + 2  # 300 B in one segment, 100 kB out in two
    np.testing.assert_allclose(_total(nat, "nat"), np.full(N, packets * p.nat_packet_s))
    np.testing.assert_allclose(_total(nat, "bridge"), np.full(N, packets * p.bridge_packet_s))
    lxc = _by_layer(_stages(["lxc"]))["lxc"]
    assert "nat" not in {s.station for s in lxc} and "bridge" in {s.station for s in lxc}


def test_type1_adds_exits_vmm_stages_and_a_two_dimensional_walk() -> None:
    stages = _stages(["kvm"])
    p = make_layer("kvm").params
    kvm = _by_layer(stages)["kvm"]
    io_mask = np.array([1, 0, 1, 1])
    np.testing.assert_allclose(_total(kvm, "vmm-io:g"), io_mask * p.io_thread_read_s)
    np.testing.assert_allclose(_total(kvm, "vmm-net:g"), 3 * p.net_thread_s * np.ones(N))
    exits = (io_mask * p.exits_per_io + 2 * p.exits_per_message) * p.exit_cycles / HOST.cpu.freq_hz
    np.testing.assert_allclose(_total(kvm, "cpu"), exits)
    # The random-access stage is the app's, but costs the 2D walk's extra references.
    m = HOST.memory
    extra = 8192 / m.access_bytes * m.tlb_miss_ratio_4k * m.walk_ref_s * (walk_refs(4, 2) - walk_refs(4, 1))
    app_cpu = _total([s for s in stages if s.layer == "app"], "cpu")
    bare_cpu = _total(_stages(["bare-metal"]), "cpu")
    np.testing.assert_allclose(app_cpu - bare_cpu, np.full(N, extra))


def test_nested_walk_has_24_references() -> None:
    assert walk_refs(4, 1) == 4 and walk_refs(4, 2) == 24  # published.csv mech-ept-walk-refs


def test_nested_stack_adds_both_layers_costs() -> None:
    nested = _by_layer(_stages(["docker-nat", "kvm"]))
    alone_kvm = _by_layer(_stages(["kvm"]))
    alone_ctr = _by_layer(_stages(["docker-nat"]))
    np.testing.assert_allclose(_total(nested["kvm"]), _total(alone_kvm["kvm"]))
    # Inside the VM the container's bridge and NAT are the guest's own, not the host's.
    stations = {s.station for s in nested["docker-nat"]}
    assert stations == {"cpu", "bridge:g", "nat:g"}
    np.testing.assert_allclose(_total(nested["docker-nat"]), _total(alone_ctr["docker-nat"]))


def test_type2_adds_the_host_os_path_and_user_space_nat() -> None:
    stack = Stack((make_layer("virtualbox", {"host_cache_hit_ratio": 0.0}),))
    vbox = _by_layer(_stages(stack))["virtualbox"]
    p = stack.layers[0].params
    assert _total(vbox, "user-nat:g") == pytest.approx(np.full(N, 3 * p.user_nat_s))
    host_io = p.host_io_cycles / HOST.cpu.freq_hz
    exits = 2 * p.exits_per_message * p.exit_cycles / HOST.cpu.freq_hz
    io_exits = p.exits_per_io * p.exit_cycles / HOST.cpu.freq_hz
    np.testing.assert_allclose(_total(vbox, "cpu"), np.array([1, 0, 1, 1]) * (host_io + io_exits) + exits)


def test_host_page_cache_hits_skip_the_device_at_the_given_ratio() -> None:
    stack = Stack((make_layer("virtualbox", {"host_cache_hit_ratio": 0.3}),))
    ctx = stack.contexts("g", HOST, np.random.SeedSequence(5))
    n = 20000
    demands = [Demand("io", np.full(n, 4096.0), op="read")]
    disk = next(s for s in stack.lower(demands, ctx, HOST) if s.station == "disk")
    hit_fraction = float(np.mean(disk.work_s == 0))
    assert abs(hit_fraction - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    writes = [Demand("io", np.full(n, 4096.0), op="write")]
    disk_w = next(s for s in stack.lower(writes, ctx, HOST) if s.station == "disk")
    assert np.all(disk_w.work_s > 0)  # writes always reach the device


def test_passthrough_skips_the_vmm_stage() -> None:
    stack = Stack((make_layer("kvm", {"io_path": "passthrough"}),))
    stations = {s.station for s in _by_layer(_stages(stack))["kvm"]}
    assert "vmm-io:g" not in stations


def test_container_limits_become_cpu_group_parameters() -> None:
    layer = make_layer("docker", {"cpu_max": "50ms/100ms", "cpu_weight": 200, "cpuset": [0, 1]})
    spec = layer.group_spec()
    assert (spec.quota_s, spec.period_s, spec.weight, spec.max_servers) == pytest.approx((0.05, 0.1, 200, 2))
    assert make_layer("docker", {"cpu_max": "25000 100000"}).group_spec().quota_s == pytest.approx(0.025)


def test_reads_and_writes_cost_the_vmm_differently() -> None:
    p = make_layer("kvm").params
    stack = Stack.of(["kvm"])
    for op, expected in (("read", p.io_thread_read_s), ("write", p.io_thread_write_s)):
        stages = stack.lower([Demand("io", np.full(N, 4096.0), op=op)], stack.contexts("g", HOST), HOST)
        np.testing.assert_allclose(_total(stages, "vmm-io:g"), np.full(N, expected))
    assert p.io_thread_read_s != p.io_thread_write_s


def test_per_packet_costs_are_paid_per_offload_segment() -> None:
    """A 64 KiB message is one segment: the VMM stage costs one net_thread, not 44 MTU packets."""
    p = make_layer("kvm").params
    stack = Stack.of(["kvm"])
    for size, segs in ((100.0, 1), (65536.0, 1), (65537.0, 2)):
        stages = stack.lower([Demand("net_out", np.full(N, size))], stack.contexts("g", HOST), HOST)
        np.testing.assert_allclose(_total(stages, "vmm-net:g"), np.full(N, segs * p.net_thread_s))
