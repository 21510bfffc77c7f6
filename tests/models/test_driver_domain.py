"""A driver domain (Xen's dom0, Hyper-V's root partition) serves every guest's I/O on its own vCPUs.

Hand-computed: each guest keeps 8 reads in flight; its back-end thread (blkback) spends 100 us of
CPU per read, far more than anything else, so a busy thread completes 10,000 reads/s. With one
dom0 vCPU the two guests' blkback threads share it: 5,000 reads/s each, 10,000 in all. With two
dom0 vCPUs each thread has one: 10,000 each, as KVM's per-VM I/O threads on host cores give.
"""

from __future__ import annotations

import pytest

from virtsim.experiments.runner import run_scenario
from virtsim.experiments.scenario import parse_scenario
from virtsim.models.hardware.host import HostSpec
from virtsim.models.virt.stack import Stack

XEN = {"profile": "xen", "io_thread_read": "100us", "vcpus": 2}


def _run(stack: list, guests: int = 2) -> tuple[dict[str, float], dict[str, float]]:
    data = {"name": "dom0", "run": {"duration": "0.5s", "warmup": "0.05s", "replications": 1, "seed": 1,
                                    "engine": "des"},
            "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd", "network": "10gbe"},
            "guests": [{"name": f"g{i}", "stack": stack,
                        "workload": {"arrivals": {"kind": "closed", "clients": 8},
                                     "demands": [{"kind": "io", "op": "read", "size": "4KiB"}]}}
                       for i in range(guests)]}
    runs = run_scenario(parse_scenario(data), progress=False).runs
    rps = runs[(runs["metric"] == "throughput_rps") & (runs["layer"] == "all") & (runs["station"] == "all")]
    util = runs[runs["metric"] == "utilization"]
    return rps.groupby("guest")["value"].sum().to_dict(), util.groupby("station")["value"].mean().to_dict()


def test_one_dom0_vcpu_is_shared_by_both_guests_back_ends() -> None:
    rps, util = _run([{**XEN, "driver_domain_vcpus": 1}])
    assert rps == {"g0": pytest.approx(5000, rel=0.01), "g1": pytest.approx(5000, rel=0.01)}
    assert util["driver-domain:vcpus"] == pytest.approx(1.0, abs=0.01)
    assert util["blkback:g0"] == pytest.approx(0.5, abs=0.01)


def test_two_dom0_vcpus_serve_two_guests_as_per_vm_threads_do() -> None:
    xen, _ = _run([{**XEN, "driver_domain_vcpus": 2}])
    kvm, _ = _run([{"profile": "kvm", "io_thread_read": "100us", "vcpus": 2}])
    for guest in ("g0", "g1"):
        assert xen[guest] == pytest.approx(10_000, rel=0.01)
        assert kvm[guest] == pytest.approx(10_000, rel=0.01)


def test_back_ends_run_where_the_profile_says() -> None:
    """Xen and Hyper-V put them in the driver domain; KVM and Firecracker in the VM's own threads."""
    where = {}
    for profile in ("xen", "hyperv", "kvm", "firecracker"):
        layer = Stack.of([profile]).layers[0]
        where[profile] = {layer.params.net_backend, layer.params.io_backend}
    assert where == {"xen": {"netback", "blkback"}, "hyperv": {"netvsp", "storvsp"},
                     "kvm": {"vhost", "iothread"}, "firecracker": {"vmm"}}


def test_guests_that_disagree_on_the_shared_driver_domain_are_refused() -> None:
    """One dom0 for the host: two guests asking for 1 and 2 dom0 vCPUs would silently keep one."""
    from virtsim.experiments.scenario import ScenarioError

    data = {"name": "dom0", "run": {"duration": "0.1s", "warmup": "0.01s", "replications": 1, "seed": 1},
            "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd", "network": "10gbe"},
            "guests": [{"name": f"g{i}", "stack": [{**XEN, "driver_domain_vcpus": i + 1}],
                        "workload": {"arrivals": {"kind": "closed", "clients": 1},
                                     "demands": [{"kind": "io", "op": "read", "size": "4KiB"}]}} for i in range(2)]}
    with pytest.raises(ScenarioError, match="driver-domain is set up differently by another guest"):
        parse_scenario(data)


def test_a_nested_xen_has_its_own_dom0_inside_the_outer_vm() -> None:
    stack = Stack.of(["xen", "xen"])
    groups = {g for ctx, layer in zip(stack.contexts("g", HostSpec()), stack.layers, strict=True)
              for g in layer.groups(ctx)}
    assert ("driver-domain",) in groups and ("g", "vcpu", "driver-domain") in groups
