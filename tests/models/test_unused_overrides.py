"""An override the other values leave without effect is refused, as a misspelt key is: a run that
ignored what the file asked for would answer another question with exit status 0 (review 35 F8).
The same override is taken wherever it has an effect, and changes the answer there."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from virtsim.models.demands import Demand
from virtsim.models.hardware.host import HostSpec
from virtsim.models.system import Guest, System, UnusedOverrideWarning
from virtsim.models.virt.stack import Stack, make_layer
from virtsim.models.workloads.catalog import Fio, KvStore, Oltp
from virtsim.models.workloads.request import RequestWorkload

REFUSED = [
    ("docker", {"network": "host", "nat_cycles": 1e9}, "nat_cycles would change nothing: network = \"host\""),
    ("docker-nat", {"network": "bridge", "nat_cycles": 1e9}, "has no NAT"),
    ("docker-nat", {"network": "host", "veth_cycles": 1, "bridge_cycles": 1}, "bridge_cycles, veth_cycles would"),
    ("kvm", {"driver_domain_vcpus": 1}, "no back end runs in a driver domain"),
    ("kvm", {"io_path": "passthrough", "io_thread_read": "1s"}, "io_thread_read would change nothing"),
    ("kvm", {"emulated_exit_factor": 20}, 'io_path = "virtio"'),
    ("kvm", {"bt_syscall_cycles": 100}, "only binary_translation = true"),
    ("kvm", {"page_sharing": "off", "identical_fraction": 0.5}, 'page_sharing = "off"'),
    ("virtualbox", {"io_path": "passthrough", "host_cache_hit_ratio": 0.9}, "no host file holds its disk"),
]


@pytest.mark.parametrize(("profile", "overrides", "message"), REFUSED)
def test_an_override_its_own_layer_switches_off_is_refused(profile, overrides, message) -> None:
    with pytest.raises(ValueError, match="would change nothing") as info:
        make_layer(profile, overrides)
    assert message in str(info.value) and f"profile {profile!r}" in str(info.value)


TAKEN = [
    ("docker-nat", {"nat_cycles": 1e6}),
    ("xen", {"driver_domain_vcpus": 1}),
    ("kvm", {"io_path": "emulated", "emulated_exit_factor": 20}),
    ("kvm", {"page_sharing": "between-guests", "identical_fraction": 0.5}),
    ("kvm", {"nested_paging": False, "shadow_fault_cycles": 5000}),
]


@pytest.mark.parametrize(("profile", "overrides"), TAKEN)
def test_the_same_override_is_taken_where_it_has_an_effect(profile, overrides) -> None:
    assert make_layer(profile, overrides).overrides


HOST = HostSpec.model_validate({"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd",
                                "network": "10gbe"})
P4 = HostSpec.model_validate({"cpu": "pentium4-672", "memory": "ddr4-small", "storage": "hdd", "network": "1gbe"})
LIGHT = RequestWorkload.model_validate({"arrivals": {"kind": "open", "rate": "10/s"},
                                        "demands": [{"kind": "cpu", "cycles": "1M"}]})


def _system(host: HostSpec, *layers: dict) -> System:
    stack = Stack(tuple(make_layer(x["profile"], {k: v for k, v in x.items() if k != "profile"}) for x in layers))
    return System(host, (Guest("g", stack, LIGHT),))


def test_what_the_host_switches_off_is_said_when_the_system_is_built() -> None:
    """Shadow paging's handler under nested paging on a CPU that has it, injection exits under
    posted interrupts, the VMCS accesses of a hypervisor that is not nested: a warning, not an
    error, since the same stack may be compared on hosts where they count (review 38 F3: a plan
    over two host types died of it)."""
    assert HOST.cpu.nested_paging and HOST.cpu.apicv
    for override, why in [({"shadow_fault_cycles": 5000}, "mapped by nested paging here"),
                          ({"inject_exits": 3}, "interrupts are posted here"),
                          ({"ipi_exits": 3}, "an IPI costs one exit"),
                          ({"vmcs_accesses": 30}, "nested in another"),
                          ({"nested_transition_cycles": 3000}, "no hypervisor runs inside")]:
        with pytest.warns(UnusedOverrideWarning, match="layer 'kvm' on this host") as info:
            _system(HOST, {"profile": "kvm", **override})
        assert why in str(info[0].message)


def test_a_cpu_without_nested_paging_takes_the_shadow_handlers_of_a_vm_that_asks_for_nested_paging() -> None:
    """The Pentium 4 has no EPT: KVM shadows, so its shadow handler counts, and changes the cost."""
    assert not P4.cpu.nested_paging
    fault = Demand("kernel", np.ones(1), group=("g", "vcpu"), event="page_fault", native_cycles=1000.0)
    costs = []
    for cycles in (5000, 9000):
        system = _system(P4, {"profile": "kvm", "vcpus": 1, "shadow_fault_cycles": cycles})
        layer = system.guests[0].stack.layers[0]
        ctx = system.guests[0].stack.contexts("g", P4, app=("g", "vcpu"))[0]
        costs.append(sum(float(d.amount[0]) for d in layer.lower([fault], ctx) if d.kind == "cpu"))
    assert costs[1] - costs[0] == pytest.approx(4000)


def test_a_nested_hypervisors_vmcs_accesses_count_on_a_cpu_without_vmcs_shadowing() -> None:
    assert not P4.cpu.vmcs_shadowing
    _system(P4, {"profile": "kvm", "vcpus": 1, "vmcs_accesses": 30}, {"profile": "kvm", "vcpus": 2})


def test_smt_yield_on_a_cpu_with_one_thread_per_core_is_refused() -> None:
    with pytest.raises(ValidationError, match="smt_yield would change nothing"):
        HostSpec.model_validate({"cpu": {"profile": "small-4c", "threads_per_core": 1, "smt_yield": 0.5}})
    two = HostSpec.model_validate({"cpu": {"profile": "small-4c", "threads_per_core": 2, "smt_yield": 0.5}})
    assert two.cpu.capacity_cores == pytest.approx(1.5 * two.cpu.cores)


@pytest.mark.parametrize(("model", "clients", "default"), [(KvStore, "connections", 1), (Oltp, "threads", 32)])
def test_a_rate_with_clients_is_refused_even_at_the_default_count_and_after_a_round_trip(model, clients,
                                                                                          default) -> None:
    kind = model.model_fields["kind"].annotation.__args__[0]
    with pytest.raises(ValidationError, match=f"either rate .* or {clients}"):
        model.model_validate({"kind": kind, "rate": "100/s", clients: default})
    open_loop = model.model_validate({"kind": kind, "rate": "100/s"})
    again = model.model_validate(open_loop.model_dump(mode="json", by_alias=True))
    assert again == open_loop and getattr(again, clients) is None
    closed = model.model_validate({"kind": kind})
    assert closed.clients == default
    assert closed.request_workload().arrivals.clients == default  # type: ignore[union-attr]


def test_fewer_ipi_exits_than_one_count_under_posted_interrupts() -> None:
    _system(HOST, {"profile": "kvm", "ipi_exits": 0.5})


def test_the_nested_switch_cost_of_a_hypervisor_with_one_inside_is_taken() -> None:
    _system(HOST, {"profile": "kvm", "vcpus": 1}, {"profile": "kvm", "vcpus": 2, "nested_transition_cycles": 3000})


def test_a_cpuset_naming_a_core_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"cpuset names core\(s\) \[0\] more than once"):
        make_layer("docker", {"cpuset": [0, 0, 1]})


def test_an_io_limit_on_a_workload_without_disk_io_is_said_once_for_alike_guests() -> None:
    """``io_max_iops`` on a container serving kv-store (no disk I/O) changes nothing: said as
    the engines' inputs are made, once for three alike guests; serving fio it counts, and
    nothing is said."""
    import warnings

    limited = Stack((make_layer("docker", {"io_max_iops": 100}),))
    kv = System(HOST, tuple(Guest(f"g-{i}", limited, KvStore(kind="kv-store").request_workload()) for i in range(3)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        kv.engine_inputs()
    said = [str(w.message) for w in caught if issubclass(w.category, UnusedOverrideWarning)]
    assert len(said) == 1 and "io_max_iops would change nothing: the workload does no disk I/O" in said[0]
    fio = System(HOST, (Guest("g", limited, Fio(kind="fio").request_workload()),))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnusedOverrideWarning)
        fio.engine_inputs()


@pytest.mark.parametrize(("workload", "said"), [("linpack", False), ("kv-store", True)])
def test_a_generic_cpu_model_for_a_workload_without_vector_code_is_said(workload: str, said: bool) -> None:
    """A generic CPU model slows only vector code wider than it shows: Linpack's AVX; for
    kv-store it changes nothing, and that is said."""
    import warnings

    from virtsim.experiments.scenario import workload_of

    generic = Stack((make_layer("kvm", {"cpu_model": "generic"}),))
    system = System(HOST, (Guest("g", generic, workload_of({"kind": workload}).request_workload()),))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        system.engine_inputs()
    messages = [str(w.message) for w in caught if issubclass(w.category, UnusedOverrideWarning)]
    assert bool(messages) == said
    assert not said or "cpu_model would change nothing: the workload runs no vector code" in messages[0]
