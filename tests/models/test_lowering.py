"""Each layer's lowering adds what it claims, and nothing else."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from virtsim.models.demands import Demand
from virtsim.models.hardware.host import HostSpec
from virtsim.models.hardware.memory import walk_refs
from virtsim.models.virt.hypervisor import Type1
from virtsim.models.virt.stack import Stack, make_layer

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
    """The stages of the app's demands, placed in the app's group as a System places them."""
    stack = profiles if isinstance(profiles, Stack) else Stack.of(profiles)
    app = stack.app_base("g")
    demands = [replace(d, group=app) for d in _app_demands()]
    return stack.lower(demands, stack.contexts("g", HOST, app=app), HOST)


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


def _labelled(stages, label: str) -> list:
    return [s for s in stages if s.label == label]


def test_container_bridge_and_nat_are_kernel_work_per_segment() -> None:
    """Received segments cost veth + bridge + NAT in the host's softirq, sent ones in the sender:
    work on the CPU, with no queue of their own."""
    stages = _stages(["docker-nat"])
    nat = _labelled(_by_layer(stages)["docker-nat"], "bridge/nat")
    p = make_layer("docker-nat").params
    per_segment = (p.veth_cycles + p.bridge_cycles + p.nat_cycles) / HOST.cpu.freq_hz
    assert {s.station for s in nat} == {"cpu"}
    rx, tx = nat
    assert rx.group == ("softirq",) and tx.group == ("g",)
    np.testing.assert_allclose(rx.work_s, np.full(N, 1 * per_segment))  # 300 B: one segment in
    np.testing.assert_allclose(tx.work_s, np.full(N, 2 * per_segment))  # 100 kB: two segments out
    lxc = _labelled(_by_layer(_stages(["lxc"]))["lxc"], "bridge/nat")
    np.testing.assert_allclose(_total(lxc), np.full(N, 3 * (p.veth_cycles + p.bridge_cycles) / HOST.cpu.freq_hz))


def test_type1_adds_exits_back_end_threads_and_a_two_dimensional_walk() -> None:
    stages = _stages(["kvm"])
    p = make_layer("kvm").params
    kvm = _by_layer(stages)["kvm"]
    io_mask = np.array([1, 0, 1, 1])
    f = HOST.cpu.freq_hz
    np.testing.assert_allclose(_total(_labelled(kvm, "vmm-io:g")), io_mask * p.io_thread_read_s, rtol=1e-12)
    copy_in = HOST.copy_s(np.full(N, 300.0))  # vhost copies received data into the guest
    # 3 segments (300 B in, 100 kB out in two) and 1 + 25 pages of 4 KiB
    work = (3 * p.net_packet_cycles + 26 * p.net_page_cycles) / HOST.cpu.freq_hz
    np.testing.assert_allclose(_total(_labelled(kvm, "vhost:g")), work + copy_in, rtol=1e-12)
    # exits: a kick and a completion interrupt per I/O; per message in, the interrupt and (2 vCPUs)
    # the IPI that wakes the application's thread; per message out, a kick
    exits = (io_mask * (p.kick_exits + p.inject_exits) + p.inject_exits + p.ipi_exits + p.kick_exits) \
        * (HOST.cpu.vmexit_cycles + p.exit_handler_cycles) / f
    np.testing.assert_allclose(_total(_labelled(kvm, "exits")), exits, rtol=1e-12)
    # back-end threads run on host cores, in the VM's group but outside its vCPUs
    assert {s.group for s in _labelled(kvm, "vhost:g")} == {("g", "vhost")}
    assert {s.station for s in _labelled(kvm, "vmm-io:g")} == {"cpu"}
    # The random-access stage is the app's, but costs the 2D walk's extra references.
    m = HOST.memory
    extra = 8192 / m.access_bytes * m.tlb_miss_ratio_4k * m.walk_ref_s * (walk_refs(4, 2) - walk_refs(4, 1))
    app_mem = [s for s in stages if s.layer == "app" and s.station == "cpu" and s.label == ""]
    bare_mem = [s for s in _stages(["bare-metal"]) if s.layer == "app" and s.station == "cpu" and s.label == ""]
    np.testing.assert_allclose(_total(app_mem) - _total(bare_mem), np.full(N, extra))


def test_batched_costs_are_conditional_on_what_sleeps() -> None:
    """Kicks wait on the back end's thread being idle, interrupts on the guest's receive path,
    the vCPU's wake-up on all of its vCPUs having halted (beyond the halt-poll window)."""
    p = make_layer("kvm", {"halt_poll": "50us"}).params
    kvm = _by_layer(_stages(Stack((make_layer("kvm", {"halt_poll": "50us"}),))))["kvm"]
    conditions = {(s.label, s.when_idle.group, s.when_idle.min_idle_s) for s in kvm if s.when_idle is not None}
    assert ("exits", ("g", "vhost"), 0.0) in conditions  # the transmit kick
    assert ("exits", ("g", "vmm-io"), 0.0) in conditions  # the block kick
    assert ("exits", ("g", "vcpu", "softirq"), 0.0) in conditions  # the receive interrupt (NAPI)
    assert ("vcpu wake", ("g", "vcpu"), p.halt_poll_s) in conditions
    assert ("vhost:g wake", ("g", "vhost"), 0.0) in conditions


def test_nested_stack_adds_both_layers_costs() -> None:
    nested = _by_layer(_stages(["docker-nat", "kvm"]))
    alone_kvm = _by_layer(_stages(["kvm"]))
    alone_ctr = _by_layer(_stages(["docker-nat"]))
    np.testing.assert_allclose(_total(nested["kvm"]), _total(alone_kvm["kvm"]))
    # Inside the VM the container's bridge and NAT run in the guest kernel's softirq and its vCPUs.
    groups = {s.group for s in _labelled(nested["docker-nat"], "bridge/nat")}
    assert groups == {("g", "vcpu", "softirq"), ("g", "vcpu", "docker-nat")}
    np.testing.assert_allclose(_total(nested["docker-nat"]), _total(alone_ctr["docker-nat"]))


def test_type2_adds_the_host_os_path_and_user_space_nat() -> None:
    stack = Stack((make_layer("virtualbox", {"host_cache_hit_ratio": 0.0}),))
    vbox = _by_layer(_stages(stack))["virtualbox"]
    p = stack.layers[0].params
    f = HOST.cpu.freq_hz
    np.testing.assert_allclose(_total(_labelled(vbox, "user-nat:g")), np.full(N, 3 * p.user_nat_s), rtol=1e-12)
    np.testing.assert_allclose(_total(_labelled(vbox, "host fs")), np.array([1, 0, 1, 1]) * p.host_io_cycles / f)
    assert {s.group for s in _labelled(vbox, "host fs")} == {("g", "vmm-io")}


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


def test_passthrough_skips_the_back_end() -> None:
    stack = Stack((make_layer("kvm", {"io_path": "passthrough"}),))
    assert not _labelled(_by_layer(_stages(stack))["kvm"], "vmm-io:g")


def test_container_limits_become_cpu_group_parameters() -> None:
    layer = make_layer("docker", {"cpu_max": "50ms/100ms", "cpu_weight": 200, "cpuset": [0, 1]})
    spec = layer.group_spec()
    assert (spec.quota_s, spec.period_s, spec.weight, spec.servers) == pytest.approx((0.05, 0.1, 200, 2))
    assert spec.cores == (0, 1)  # bound to those cores, not a count
    assert make_layer("docker", {"cpu_max": "25000 100000"}).group_spec().quota_s == pytest.approx(0.025)


@pytest.mark.parametrize("text, quota_s", [("50000/100000", 0.05), ("50000 100000", 0.05), ("50ms/100ms", 0.05),
                                           ("50000/100ms", 0.05), ("1.5s/1s", 1.5)])
def test_cpu_max_numbers_without_a_unit_are_microseconds_as_the_kernel_writes_them(text: str, quota_s: float) -> None:
    """Review 30 F1: "50000/100000" was read as 50000 s per 100000 s, a quota that never ran out
    within a run: 400 requests/s where the limit allows 50."""
    from virtsim.models.virt.container import parse_cpu_max

    assert parse_cpu_max(text) == pytest.approx((quota_s, 1.0 if text == "1.5s/1s" else 0.1))


@pytest.mark.parametrize("text, needle", [("50s/100s", "the kernel takes 1 ms .. 1 s"),
                                          ("500us/100ms", "at least 1 ms"), ("5ms/500us", "1 ms .. 1 s")])
def test_cpu_max_outside_the_kernels_bounds_is_refused(text: str, needle: str) -> None:
    from virtsim.models.virt.container import parse_cpu_max
    from virtsim.sim.units import UnitError

    with pytest.raises(UnitError, match=needle):
        parse_cpu_max(text)


def test_reads_and_writes_cost_the_vmm_differently() -> None:
    p = make_layer("kvm").params
    stack = Stack.of(["kvm"])
    for op, expected in (("read", p.io_thread_read_s), ("write", p.io_thread_write_s)):
        stages = stack.lower([Demand("io", np.full(N, 4096.0), op=op)], stack.contexts("g", HOST), HOST)
        np.testing.assert_allclose(_total(_labelled(stages, "vmm-io:g")), np.full(N, expected))
    assert p.io_thread_read_s != p.io_thread_write_s


def test_per_packet_costs_are_paid_per_offload_segment() -> None:
    """A 64 KiB message is one segment: vhost costs one net_packet (and its pages), not 44 MTU
    packets' worth."""
    p = make_layer("kvm").params
    stack = Stack.of(["kvm"])
    for size, segs, pages in ((100.0, 1, 1), (65536.0, 1, 16), (65537.0, 2, 17)):
        stages = stack.lower([Demand("net_out", np.full(N, size))], stack.contexts("g", HOST), HOST)
        expected = (segs * p.net_packet_cycles + pages * p.net_page_cycles) / HOST.cpu.freq_hz
        np.testing.assert_allclose(_total(_labelled(stages, "vhost:g")), np.full(N, expected))


def test_large_ios_pay_the_back_end_per_segment() -> None:
    """A 1 MiB read costs the I/O thread its per-request work plus 7 further 128 KiB segments."""
    p = make_layer("kvm").params
    stack = Stack.of(["kvm"])
    for size, extra in ((4096.0, 0), (2.0**20, 7)):
        stages = stack.lower([Demand("io", np.full(N, size), op="read")], stack.contexts("g", HOST), HOST)
        np.testing.assert_allclose(_total(_labelled(stages, "vmm-io:g")),
                                   np.full(N, p.io_thread_read_s + extra * p.io_segment_s))


def test_the_nested_walk_is_charged_to_the_layer_that_added_it() -> None:
    """A random access natively costs latency + 4 walk references; under EPT 24. The 20 extra
    references' time is KVM's, though the stage is the application's own work."""
    m = HOST.memory
    (stage,) = [s for s in _stages(["kvm"]) if s.layer == "app" and s.station == "cpu" and s.label == ""
                and s.shares]
    native, nested = m.latency_s + 4 * m.walk_ref_s, m.latency_s + 24 * m.walk_ref_s
    assert stage.shares == (("kvm", pytest.approx(20 * m.walk_ref_s / nested)),)
    assert 1 - stage.shares[0][1] == pytest.approx(native / nested)
    # A VM in a VM walks two dimensions too, not three: the host merges the guest hypervisor's
    # tables with its own into one shadow (KVM's shadow EPT), so only the outer layer adds one.
    inner, outer = make_layer("kvm"), make_layer("xen", {"vcpus": 4})
    (deep,) = [s for s in _stages(Stack((inner, outer))) if s.layer == "app" and s.shares]
    assert deep.shares == (("xen", pytest.approx(20 * m.walk_ref_s / nested)),)


def test_a_nested_guests_exit_goes_through_the_host_twice_and_its_vmcs_accesses_trap_without_shadowing() -> None:
    """KVM in KVM. An exit of the inner guest costs the inner KVM's handler (1,431 cycles) plus
    two switches through the host (each a 507-cycle round trip and 1,662 cycles of the host's
    emulation): 5,769 cycles with VMCS shadowing. Without it, each of the inner handler's 12
    VMREAD/VMWRITEs is an exit of the outer guest (507 + 1,431): 23,256 more, 29,025 in all.
    A third level multiplies again: its switches are exits of a nested guest."""
    from virtsim.models.hardware.host import HostSpec

    def exit_cycles(profiles: list[str], shadowing: bool) -> float:
        host = HostSpec.model_validate({**HOST.model_dump(by_alias=True), "cpu": {
            **HOST.cpu.model_dump(by_alias=True), "vmexit_cycles": 507, "vmcs_shadowing": shadowing}})
        stack = Stack.of(profiles)
        layer, ctx = stack.layers[0], stack.contexts("g", host)[0]
        assert isinstance(layer, Type1)
        return layer.exit_cycles(ctx)

    assert exit_cycles(["kvm"], False) == exit_cycles(["kvm"], True) == 507 + 1431
    assert exit_cycles(["kvm", "kvm"], True) == pytest.approx(1431 + 2 * (507 + 1662))
    assert exit_cycles(["kvm", "kvm"], False) == pytest.approx(1431 + 2 * (507 + 1662) + 12 * (507 + 1431))
    middle_switch = 2 * (507 + 1662) + 12 * (507 + 1431)
    assert exit_cycles(["kvm", "kvm", "kvm"], False) == pytest.approx(
        1431 + 2 * (middle_switch + 1662) + 12 * (middle_switch + 1431))
    # A container between them is no hypervisor: KVM in docker in KVM is still one level deep.
    assert exit_cycles(["kvm", "docker", "kvm"], True) == pytest.approx(1431 + 2 * (507 + 1662))


def test_records_split_a_shared_stage_between_layers() -> None:
    from virtsim.sim.records import RequestLog, request_metrics

    log = RequestLog(("cpu", "disk"), ("app", "kvm"), np.array([0.0]), np.array([3.0]), np.array([[2.0, 1.0]]), 1,
                     shares=((("kvm", 0.25),), ()))
    rows = {(m, layer): v for m, layer, station, v in request_metrics(log, 0.0, 10.0) if station == "all"}
    assert rows[("time_mean_s", "app")] == pytest.approx(1.5) and rows[("time_mean_s", "kvm")] == pytest.approx(1.5)


def test_kvm_in_kvm_has_a_vhost_and_an_io_thread_per_level_each_on_its_own_queue() -> None:
    """Issue 15 found both nested VMMs sharing one queue name; each level's threads are its own."""
    stages = _stages(["kvm", "kvm"])
    labels = {s.label for s in stages if s.station == "cpu" and s.label.split(":")[0] in ("vhost", "vmm-io")}
    groups = {s.group for s in stages if s.label in labels}
    assert labels == {"vhost:g", "vhost:g/vcpu/kvm", "vmm-io:g", "vmm-io:g/vcpu/kvm"}
    assert len(groups) == 4


def test_a_nested_hosts_kick_for_an_io_is_taken_by_the_inner_vmms_io_thread() -> None:
    """In kvm-in-kvm, L1's QEMU I/O thread issues the guest's I/O to its own virtio disk, so L0's
    kick exits (sent when L0's I/O thread sleeps) run on L1's I/O thread, not on the L2
    application's vCPU (review 39 F6: they were charged to the application)."""
    stages = _stages(["kvm", "kvm"])
    l0_io, l1_io = ("g", "vmm-io"), ("g", "vcpu", "kvm", "vmm-io")
    kicks = [s for s in stages if s.label == "exits" and s.when_idle is not None and s.when_idle.group == l0_io]
    assert [s.group for s in kicks] == [l1_io]
    assert any(s.group == l1_io and s.label.startswith("vmm-io") for s in stages)


def test_an_exit_costs_the_cpu_generations_world_switch_plus_the_hypervisors_handling() -> None:
    """The same KVM on a 2005 Prescott (1,926 cycles per VT-x round trip, published.csv
    hssv-vmexit-prescott) and on a Sandy Bridge (507): each exit costs 1,419 cycles more."""
    from virtsim.models.hardware.host import HostSpec

    def exit_work(vmexit_cycles: float) -> float:
        host = HostSpec.model_validate({**HOST.model_dump(by_alias=True), "cpu": {
            **HOST.cpu.model_dump(by_alias=True), "vmexit_cycles": vmexit_cycles}})
        stack = Stack.of(["kvm"])
        app = stack.app_base("g")
        demands = [replace(d, group=app) for d in _app_demands()]
        stages = stack.lower(demands, stack.contexts("g", host, app=app), host)
        return float(_total(_labelled(stages, "exits")).sum()) * host.cpu.freq_hz

    handler = Stack.of(["kvm"]).layers[0].params.exit_handler_cycles
    new, old = exit_work(507), exit_work(1926)
    exits = new / (507 + handler)
    assert exits == pytest.approx(round(exits))  # a whole number of exits per sample
    assert old - new == pytest.approx(exits * (1926 - 507))


def test_with_apicv_an_io_completion_costs_no_exit_and_an_ipi_only_the_senders() -> None:
    """One 4 KiB read in KVM: a kick (1 exit) and the completion interrupt (injection + EOI: 2
    exits) without APICv; with it the interrupt is posted and the EOI virtual: the kick alone.
    An IPI between vCPUs (2 exits) keeps only the sender's ICR write."""
    from virtsim.models.hardware.host import HostSpec

    def io_exits(apicv: bool) -> float:
        host = HostSpec.model_validate({**HOST.model_dump(by_alias=True), "cpu": {
            **HOST.cpu.model_dump(by_alias=True), "apicv": apicv}})
        stack = Stack.of(["kvm"])
        stages = stack.lower([Demand("io", np.full(N, 4096.0), op="read")], stack.contexts("g", host), host)
        layer = stack.layers[0]
        assert isinstance(layer, Type1)
        per_exit = layer.exit_cycles(stack.contexts("g", host)[0]) / host.cpu.freq_hz
        return float(_total(_labelled(stages, "exits"))[0]) / per_exit

    assert io_exits(False) == pytest.approx(3) and io_exits(True) == pytest.approx(1)
    kvm = make_layer("kvm")
    assert isinstance(kvm, Type1)
    ctx = Stack.of(["kvm"]).contexts("g", HOST)[0]
    assert kvm.ipi_exits(ctx) == (1.0 if HOST.cpu.apicv else 2.0)
    off = make_layer("kvm", {"apicv": False})
    assert isinstance(off, Type1) and off.ipi_exits(ctx) == 2.0
