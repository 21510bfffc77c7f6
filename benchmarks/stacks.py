"""The compiled kernel against the DES on real stacks, measured in one run (ratios, not seconds).

Prints: per stack of compare-stacks, DES and kernel seconds and their ratio (the same requests
either way: the script checks finish times agree); the kernel's ns per event on a stack and on
M/M/1 against a bare numba Lindley loop (the limit for an event loop on this machine); the same
ratio over every run of the overhead experiment's defaults; and density evaluation time on the
kernel at 8 to 1,024 guests on a 64-core, 512 GiB host with the fitted growth exponent.

Run: ``python benchmarks/stacks.py`` (about two minutes on a quiet 2-core machine; the first run
also compiles the kernel).
"""

from __future__ import annotations

import time

import numba
import numpy as np

from virtsim.experiments.density import DensitySpec, evaluate
from virtsim.experiments.scenario import default_scenario, load_scenario
from virtsim.models.virt.stack import Stack
from virtsim.sim import kernel_loop as kl
from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import KernelRun, compile_kernel, simulate_kernel
from virtsim.sim.routes import OpenArrivals, Slot, Source, StationSpec


@numba.njit(cache=True)
def _lindley(arrivals: np.ndarray, service: np.ndarray) -> float:
    free = 0.0
    total = 0.0
    for i in range(arrivals.shape[0]):
        start = max(free, arrivals[i])
        free = start + service[i]
        total += free - arrivals[i]
    return total


def compare_stacks() -> None:
    scenario = load_scenario(default_scenario().parent / "compare-stacks.toml")
    control = scenario.run.control()
    print("compare-stacks (one replication each):")
    des_total = kernel_total = 0.0
    for label, stack in scenario.variants():
        stations, sources = scenario.system(stack).engine_inputs()
        t0 = time.perf_counter()
        des = simulate(stations, sources, control)
        t1 = time.perf_counter()
        kernel = simulate_kernel(stations, sources, control)
        t2 = time.perf_counter()
        for name, log in des.logs.items():
            assert np.allclose(log.finish_s, kernel.logs[name].finish_s, rtol=0, atol=1e-9, equal_nan=True)
        des_total += t1 - t0
        kernel_total += t2 - t1
        print(f"  {label:16s} DES {t1 - t0:6.2f} s  kernel {t2 - t1:6.3f} s  ratio {(t1 - t0) / (t2 - t1):5.1f}x")
    print(f"  all stacks: ratio {des_total / kernel_total:.1f}x")


def events_per_second() -> None:
    scenario = load_scenario(default_scenario())
    stations, sources = scenario.system(scenario.variants()[1][1]).engine_inputs()
    run = KernelRun(stations, sources, scenario.run.control())
    t0 = time.perf_counter()
    run.step(scenario.run.duration_s)
    elapsed = time.perf_counter() - t0
    events = int(run.state.ctr[kl.C_SEQ])  # events scheduled (wake-ups included)
    n = 2_000_000
    rng = np.random.default_rng(1)
    arrivals, service = np.cumsum(rng.exponential(1.0, n)), rng.exponential(0.8, n)
    _lindley(arrivals[:10], service[:10])
    t1 = time.perf_counter()
    _lindley(arrivals, service)
    lindley = (time.perf_counter() - t1) / n
    def exponential_work(seed: np.random.SeedSequence):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(seed)
        return lambda n: rng.exponential(0.8, (n, 1))

    source = Source("x", (Slot("s", "l"),), OpenArrivals(1.0), exponential_work)
    mm1 = KernelRun([StationSpec("s", "fifo", 1)], [source], RunControl(duration_s=200_000.0))
    t2 = time.perf_counter()
    mm1.step(200_000.0)
    mm1_ns = (time.perf_counter() - t2) / int(mm1.state.ctr[kl.C_SEQ]) * 1e9
    print(f"kernel: {elapsed / events * 1e9:.0f} ns per event (kvm stack, {events:,} events), "
          f"{mm1_ns:.0f} ns per event on M/M/1 (one FIFO); bare numba Lindley loop: {lindley * 1e9:.1f} ns per request")


def overhead_experiment() -> None:
    """DES against kernel on every (workload, stack) run of ``virtsim overhead``'s defaults."""
    from virtsim.experiments.overhead import DEFAULT_STACKS, WORKLOADS, _scenario
    from virtsim.experiments.scenario import parse_scenario

    des_total = kernel_total = 0.0
    for name in WORKLOADS:
        scenario = parse_scenario(_scenario(name, DEFAULT_STACKS, 1, 1), name)  # bare metal first
        control = scenario.run.control()
        des_w = kernel_w = 0.0
        for _, stack in scenario.variants():
            stations, sources = scenario.system(stack).engine_inputs()
            t0 = time.perf_counter()
            simulate(stations, sources, control)
            t1 = time.perf_counter()
            simulate_kernel(stations, sources, control)
            t2 = time.perf_counter()
            des_w, kernel_w = des_w + t1 - t0, kernel_w + t2 - t1
        des_total, kernel_total = des_total + des_w, kernel_total + kernel_w
        print(f"  {name:14s} DES {des_w:6.2f} s  kernel {kernel_w:6.3f} s  ratio {des_w / kernel_w:5.1f}x")
    print(f"  overhead experiment, all runs: ratio {des_total / kernel_total:.1f}x")


def density_growth() -> None:
    # a 64-core, 512 GiB host: 1,024 guests of 256 MiB fit its memory
    spec = DensitySpec.model_validate({"host": {"cpu": {"profile": "xeon-8175m-2s", "cores_per_socket": 32},
                                                "memory": {"profile": "ddr4-2s-skylake", "capacity": "512GiB"},
                                                "storage": "nvme-ssd"}, "app_memory": "256MiB"})
    print("density evaluation on the kernel (a 64-core, 512 GiB host, docker, the default workload):")
    evaluate(spec, Stack.of(["docker"]), 4)  # warm: imports and the kernel's compiled code
    counts, times = [], []
    for guests in (8, 32, 128, 512, 1024):
        t0 = time.perf_counter()
        evaluate(spec, Stack.of(["docker"]), guests)
        elapsed = time.perf_counter() - t0
        counts.append(guests)
        times.append(elapsed)
        print(f"  {guests:5d} guests: {elapsed:6.2f} s")
    slope = np.polyfit(np.log(counts), np.log(times), 1)[0]
    print(f"  growth exponent (time ~ guests^k): k = {slope:.2f}")


if __name__ == "__main__":
    compile_kernel()
    compare_stacks()
    print("overhead experiment (one replication, every workload on bare metal and the default stacks):")
    overhead_experiment()
    events_per_second()
    density_growth()
