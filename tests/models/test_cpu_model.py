"""The CPU model a guest sees: a generic model (QEMU's qemu64) hides AVX, so vector code runs on SSE2.

Hand-computed on Felter's Sandy Bridge host (AVX: 8 double-precision flops per cycle, SSE2: 4):
1,000 cycles of AVX code become 2,000 cycles on a generic vCPU, 1,000 of them the hypervisor's;
code that is not vector-bound, or no wider than SSE2, is unchanged; and a stack of hypervisors
narrows the code once, however many of them show a generic model.
"""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.experiments.runner import run_scenario
from virtsim.experiments.scenario import ScenarioError, parse_scenario
from virtsim.models.demands import Demand
from virtsim.models.hardware.host import HostSpec
from virtsim.models.virt.stack import Stack, make_layer

FELTER = HostSpec()  # Xeon E5-2665: baseline_flops_per_cycle = 4, Linpack's AVX code 8 wide


def _stack(layers: list) -> Stack:
    return Stack(tuple(make_layer(x) if isinstance(x, str) else make_layer(x["profile"], {
        k: v for k, v in x.items() if k != "profile"}) for x in layers))


def _cycles(layers: list, simd: float, cycles: float = 1000.0) -> dict[str, float]:
    """CPU cycles per request of one ``cpu`` demand of ``simd`` width, by the layer charged."""
    st = _stack(layers)
    app = st.app_base("g")
    demand = Demand("cpu", np.full(2, cycles), group=app, simd_flops_per_cycle=simd)
    out: dict[str, float] = {}
    for s in st.lower([demand], st.contexts("g", FELTER, app=app), FELTER):
        assert s.station == "cpu"
        out[s.layer] = out.get(s.layer, 0.0) + float(s.work_s[0]) * FELTER.cpu.freq_hz
    return out


GENERIC = {"profile": "kvm", "vcpus": 2, "cpu_model": "generic"}
HOST = {"profile": "kvm", "vcpus": 2, "cpu_model": "host"}


def test_avx_code_on_a_generic_cpu_model_takes_twice_the_cycles() -> None:
    assert _cycles([GENERIC], simd=8) == pytest.approx({"app": 1000.0, "kvm": 1000.0})
    assert _cycles([GENERIC], simd=16) == pytest.approx({"app": 1000.0, "kvm": 3000.0})  # AVX2+FMA code


@pytest.mark.parametrize("simd", [0.0, 2.0, 4.0])
def test_code_no_wider_than_sse2_is_unchanged(simd: float) -> None:
    assert _cycles([GENERIC], simd=simd) == pytest.approx({"app": 1000.0})


@pytest.mark.parametrize("layers", [[HOST], ["bare-metal"], ["docker"], ["docker", HOST]])
def test_the_host_cpu_model_and_no_vm_run_vector_code_as_written(layers: list) -> None:
    assert _cycles(layers, simd=8) == pytest.approx({"app": 1000.0})


def test_a_container_in_a_generic_vm_is_narrowed_by_the_vm() -> None:
    assert _cycles(["docker", GENERIC], simd=8) == pytest.approx({"app": 1000.0, "kvm": 1000.0})


def test_nested_hypervisors_narrow_vector_code_once() -> None:
    # the inner guest sees what its hypervisor shows: the outer's generic model hides AVX from both
    inner = dict(HOST, vcpus=1)
    assert _cycles([inner, GENERIC], simd=8) == pytest.approx({"app": 1000.0, "kvm": 1000.0})
    both = dict(GENERIC, vcpus=1)
    assert _cycles([both, GENERIC], simd=8) == pytest.approx({"app": 1000.0, "kvm": 1000.0})


def _gflops(stack: list) -> float:
    data = {"name": "cpu-model", "run": {"duration": "1s", "warmup": "0.1s", "replications": 1, "seed": 1},
            "guests": [{"name": "hpl", "stack": stack,
                        "workload": {"kind": "linpack", "threads": 2, "block_flops": 2e7}}]}
    runs = run_scenario(parse_scenario(data), progress=False).runs
    return float(runs.loc[runs["metric"] == "gflops", "value"].mean())


def test_linpack_in_a_generic_guest_runs_at_half_the_flops() -> None:
    # two HPL threads on two vCPUs of an otherwise idle host: each thread runs at its core's rate,
    # which the generic model halves (SSE2's 4 flops per cycle against AVX's 8)
    vm = {"profile": "kvm", "vcpus": 2}
    assert _gflops([dict(vm, cpu_model="generic")]) / _gflops([vm]) == pytest.approx(0.5, rel=0.02)


def test_an_unknown_cpu_model_is_refused_with_the_choices() -> None:
    data = {"name": "x", "guests": [{"name": "g", "stack": [{"profile": "kvm", "cpu_model": "qemu64"}],
                                     "workload": {"kind": "linpack"}}]}
    with pytest.raises(ScenarioError, match="cpu_model"):
        parse_scenario(data)
