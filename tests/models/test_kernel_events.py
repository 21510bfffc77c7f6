"""The guest kernel's events under each CPU virtualization mode, costed by hand.

Numbers are the Pentium 4 672's (a 4,340-cycle VM exit and entry, no nested paging) and small
made-up handlers, so that each expected cost is a sum one can read off the table in
:mod:`virtsim.models.virt.hypervisor`.
"""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.models.demands import KERNEL_EVENTS, Demand
from virtsim.models.hardware.host import HostSpec
from virtsim.models.virt.stack import Stack, make_layer

P4 = HostSpec.model_validate({"cpu": "pentium4-672", "memory": "ddr4-small", "storage": "hdd", "network": "1gbe"})
SWITCH = 4340.0
NATIVE = 1000.0
HANDLERS = {"shadow_fault_cycles": 5000, "shadow_pte_cycles": 7000, "port_io_cycles": 9000,
            "exit_handler_cycles": 600}
BT = {"binary_translation": True, "nested_paging": False, "bt_syscall_cycles": 2000, "bt_fault_cycles": 2500,
      "bt_pte_cycles": 400, "bt_port_io_cycles": 200}


def _stack(layers: list) -> Stack:
    """Layers from the guest's down: profile names, or dicts of a profile and its overrides."""
    return Stack(tuple(make_layer(x) if isinstance(x, str) else make_layer(x["profile"], {
        k: v for k, v in x.items() if k != "profile"}) for x in layers))


MODERN = HostSpec()  # Felter's Sandy Bridge: EPT


def _cycles(stack: list, event: str, count: float = 3.0, host: HostSpec = P4) -> dict[str, float]:
    """Cycles per request of ``count`` events on ``host``, by the layer that added them."""
    st = _stack(stack)
    app = st.app_base("g")
    demand = Demand("kernel", np.full(2, count), group=app, event=event, native_cycles=NATIVE)  # type: ignore[arg-type]
    out: dict[str, float] = {}
    for s in st.lower([demand], st.contexts("g", host, app=app), host):
        assert s.station == "cpu"
        out[s.layer] = out.get(s.layer, 0.0) + float(s.work_s[0]) * host.cpu.freq_hz
    return out


def _vm(**params) -> list:
    return [{"profile": "kvm", "vcpus": 1, **params}]


@pytest.mark.parametrize("event", KERNEL_EVENTS)
def test_bare_metal_and_containers_pay_the_native_cost_only(event) -> None:
    assert _cycles(["bare-metal"], event) == pytest.approx({"app": 3 * NATIVE})
    assert _cycles(["docker"], event) == pytest.approx({"app": 3 * NATIVE})


@pytest.mark.parametrize("event", [e for e in KERNEL_EVENTS if e != "port_io"])
def test_under_nested_paging_only_port_io_exits(event) -> None:
    assert _cycles(_vm(**HANDLERS), event, host=MODERN) == pytest.approx({"app": 3 * NATIVE})
    modern_switch = MODERN.cpu.vmexit_cycles
    assert _cycles(_vm(**HANDLERS), "port_io", host=MODERN) == pytest.approx({"kvm": 3 * (modern_switch + 9000)})


def test_an_emulated_port_access_replaces_the_device_access_with_an_exit() -> None:
    assert _cycles(_vm(**HANDLERS), "port_io") == pytest.approx({"kvm": 3 * (SWITCH + 9000)})


@pytest.mark.parametrize(("event", "handler"), [("page_fault", 5000), ("pte_write", 7000),
                                                 ("context_switch", 600)])
def test_shadow_paging_traps_faults_page_table_writes_and_cr3_loads(event, handler) -> None:
    """Each an exit (the world switch) and its handler; a CR3 load has no handler of its own,
    so it takes the generic one. The guest's own handling stays."""
    got = _cycles(_vm(nested_paging=False, **HANDLERS), event)
    assert got == pytest.approx({"app": 3 * NATIVE, "kvm": 3 * (SWITCH + handler)})


@pytest.mark.parametrize("event", ["syscall", "exception"])
def test_shadow_paging_leaves_system_calls_and_other_exceptions_alone(event) -> None:
    assert _cycles(_vm(nested_paging=False, **HANDLERS), event) == pytest.approx({"app": 3 * NATIVE})


def test_a_handler_left_unset_is_the_generic_one() -> None:
    got = _cycles(_vm(nested_paging=False, exit_handler_cycles=600), "page_fault")
    assert got == pytest.approx({"app": 3 * NATIVE, "kvm": 3 * (SWITCH + 600)})


@pytest.mark.parametrize(("event", "added"), [("syscall", 2000), ("page_fault", 2500), ("exception", 2500),
                                               ("pte_write", 400), ("context_switch", 0)])
def test_binary_translation_adds_its_own_handlers_and_no_exit(event, added) -> None:
    got = _cycles(_vm(**BT), event)
    assert got == pytest.approx({"app": 3 * NATIVE, **({"kvm": 3 * added} if added else {})})


def test_binary_translation_emulates_a_port_read_without_the_bus() -> None:
    assert _cycles(_vm(**BT), "port_io") == pytest.approx({"kvm": 3 * 200})


def test_a_nested_guests_exits_multiply_and_reach_the_host_once() -> None:
    """KVM in KVM on the P4 (no VMCS shadowing): an L2 exit is L1's handler plus two switches
    through L0, each L0's switch and transition, plus L1's VMCS accesses, each a whole L0 exit.
    The event itself is costed once, by L1: L0 sees only L1's exits."""
    outer = {"profile": "kvm", "vcpus": 1, "exit_handler_cycles": 600, "nested_transition_cycles": 1000}
    inner = {"profile": "kvm", "vcpus": 1, "nested_paging": False, "shadow_fault_cycles": 5000,
             "vmcs_accesses": 10}
    got = _cycles([inner, outer], "page_fault", count=1.0)
    l0_exit = SWITCH + 600
    switch = 2 * (SWITCH + 1000) + 10 * l0_exit
    assert sum(got.values()) == pytest.approx(NATIVE + switch + 5000)


def test_binary_translation_needs_shadow_paging_and_its_costs() -> None:
    with pytest.raises(ValueError, match="nested_paging = false"):
        _stack(_vm(binary_translation=True))
    with pytest.raises(ValueError, match="bt_fault_cycles"):
        _stack(_vm(binary_translation=True, nested_paging=False, bt_syscall_cycles=1))


def test_the_era_profiles_reproduce_adams_and_agesen_from_their_derivations() -> None:
    """The fitted handlers give back their rows; the two a fit did not touch are predictions."""
    bt, vtx = ["vmware-player-bt-2006"], ["vmware-player-vtx-2006"]
    one = {"page_fault": 1093.0, "exception": 889.0}

    def total(stack: list, event: str) -> float:
        st = _stack(stack)
        app = st.app_base("g")
        d = Demand("kernel", np.ones(1), group=app, event=event, native_cycles=one[event])  # type: ignore[arg-type]
        return sum(float(s.work_s[0]) for s in st.lower([d], st.contexts("g", P4, app=app), P4)) \
            * P4.cpu.freq_hz

    assert total(bt, "page_fault") == pytest.approx(3927)  # aa06-nano-pgfault-bt (fitted)
    assert total(vtx, "page_fault") == pytest.approx(11242)  # aa06-nano-pgfault-hwvmm (fitted)
    assert total(bt, "exception") == pytest.approx(889 + 2834)  # predicts aa06-nano-divzero-bt, 3,223
    assert total(vtx, "exception") == pytest.approx(889)  # predicts aa06-nano-divzero-hwvmm, 1,014


def test_a_cpu_without_nested_paging_makes_any_hypervisor_shadow() -> None:
    """KVM asks for EPT, but the Pentium 4 has none: its guest's page faults exit (as kvm_intel
    with ept=0), and a TLB miss walks one dimension only."""
    modern = MODERN
    assert modern.cpu.nested_paging and not P4.cpu.nested_paging
    st = _stack(_vm(**HANDLERS))
    app = st.app_base("g")
    fault = Demand("kernel", np.ones(1), group=app, event="page_fault", native_cycles=NATIVE)
    walk = Demand("mem", np.full(1, 4096.0), group=app, pattern="random")
    on_p4 = st.layers[0].lower([fault, walk], st.contexts("g", P4, app=app)[0])
    on_modern = st.layers[0].lower([fault, walk], st.contexts("g", modern, app=app)[0])
    assert [d.walk_dims for d in on_p4 if d.kind == "mem"] == [1]
    assert [d.walk_dims for d in on_modern if d.kind == "mem"] == [2]
    assert sum(float(d.amount[0]) for d in on_p4 if d.kind == "cpu") == pytest.approx(NATIVE + SWITCH + 5000)
    assert sum(float(d.amount[0]) for d in on_modern if d.kind == "cpu") == pytest.approx(NATIVE)


def test_a_hypervisor_in_a_vm_without_nested_paging_shadows_its_guests_tables() -> None:
    """Review 28 F9: KVM offers nested EPT to a guest hypervisor only if it uses EPT itself. Under
    an L0 on shadow page tables, L1 must shadow L2's tables, so L2's page-table writes and page
    faults exit, through L0, and cost more than on one level of shadow paging, not nothing."""
    one_level = sum(_cycles([{"profile": "kvm", "vcpus": 1, "nested_paging": False}], "pte_write",
                            host=MODERN).values())
    nested = _cycles([{"profile": "kvm", "vcpus": 1}, {"profile": "kvm", "vcpus": 2, "nested_paging": False}],
                     "pte_write", host=MODERN)
    assert sum(nested.values()) > one_level > 3 * NATIVE
    # with nested paging in L0, L2's page-table writes are native
    both = _cycles([{"profile": "kvm", "vcpus": 1}, {"profile": "kvm", "vcpus": 2}], "pte_write", host=MODERN)
    assert both == pytest.approx({"app": 3 * NATIVE})
