"""Start-up: boot times per stack as distributions, and boot storms.

A guest's start is a request: it pulls the image layers the host lacks over the network and
unpacks them to disk, reads its boot files from the host's disk (a VM its kernel, initrd and
early root file system; a container nothing when its image layers are present), then boots: the
profile's published p50 boot time (``boot``) less the read it already accounts for, drawn from a
lognormal distribution around that median, of which ``BOOT_CPU_FRACTION`` is CPU work in the
guest's own group and the rest waits that hold no core (timers, device probing, the runtime's
round trips). N guests started at once (a boot storm) contend for the disk and the cores; the
engine serves them like any other requests. Boots of one image share the host's page cache: the
first reads the boot files from the disk, the others wait for those pages (the first boot's read
time, alone) and copy them from memory.

Part of a container's start holds locks every start on the same kernel needs (``start_lock``
of :class:`~virtsim.models.virt.container.ContainerParams`: the network namespace's creation and
wiring under ``rtnl_mutex``, RCU grace periods waited out under them, the runtime daemon's own
locks): a wait that holds no core, one start at a time. A container on the host's kernel takes
the host's lock (``scope = "host"``), shared by every guest starting there, so N containers
started at once finish about ``start_lock`` apart; one inside a VM takes its own VM kernel's.

A nested stack boots layer by layer, outermost first: a container in a new VM starts after that
VM's kernel is up, and a VM in a VM after the outer guest has booted. Every guest here gets its own
VM, so nothing is up already: the boot times of the layers add, and each VM layer reads its own
boot files (the inner ones through the outer layers' virtual disks).
"""

from __future__ import annotations

import numpy as np

from virtsim.models.hardware.host import HostSpec
from virtsim.models.system import Guest, System
from virtsim.models.virt.container import Container
from virtsim.models.virt.hypervisor import Type1
from virtsim.models.virt.stack import Stack
from virtsim.models.workloads.request import RequestWorkload
from virtsim.sim.control import RunControl
from virtsim.sim.kernel import simulate_kernel

__all__ = ["boot_storm", "boot_workload"]

VM_BOOT_READ_BYTES = 64 * 2**20  # assumption: kernel + initrd + early root file system blocks
BOOT_SIGMA = 0.2  # assumption: spread of boot times around the median (log scale)
BOOT_CPU_FRACTION = 0.5  # assumption: half of a boot is CPU work, half waits
START_LOCK = "container-start"  # the locks a container start holds, as one (see the module docstring)
UNPACK_CYCLES_PER_BYTE = 10.0  # assumption: gzip decompression and file creation of a pulled layer


def boot_workload(host: HostSpec, stack: Stack, count: int, read_bytes: float | None = None,
                  pull_bytes: float = 0.0, cached: bool = False) -> RequestWorkload:
    """``count`` boots at time zero on ``stack``: pull the image if missing, read the boot files,
    then the boot's CPU work.

    ``pull_bytes``: image layers not yet on the host, pulled over its NIC and unpacked
    (``UNPACK_CYCLES_PER_BYTE``) before the start; boots that pull contend for the network.
    ``cached``: another boot of the same image reads the boot files into the page cache; this one
    waits for them and copies them from memory.
    """
    vm_layers = sum(isinstance(layer, Type1) for layer in stack.layers)
    read = VM_BOOT_READ_BYTES * vm_layers if read_bytes is None else read_bytes
    # Layers boot in sequence (see the module docstring), so their boot times add.
    boot_s = sum(getattr(layer.params, "boot_s", 0.0) for layer in stack.layers)
    alone_read_s = host.storage.alone_s(read)  # as the read below takes on an idle disk
    locked = _start_locks(stack)
    cycles = max(boot_s - alone_read_s - sum(seconds for _, seconds in locked), 0.0) * host.cpu.freq_hz
    demands: list[dict] = []
    if pull_bytes > 0:
        demands += [{"kind": "net_in", "size": pull_bytes},
                    {"kind": "cpu", "cycles": pull_bytes * UNPACK_CYCLES_PER_BYTE},
                    {"kind": "io", "op": "write", "size": pull_bytes, "pattern": "seq"}]
    if read > 0 and cached:
        demands += [{"kind": "delay", "duration": alone_read_s}, {"kind": "mem", "size": read, "pattern": "seq"}]
    elif read > 0:
        demands.append({"kind": "io", "op": "read", "size": read, "pattern": "seq"})
    demands += [{"kind": "cpu", "cycles": cycles * BOOT_CPU_FRACTION, "dist": "lognormal", "sigma": BOOT_SIGMA},
                {"kind": "delay", "duration": cycles * (1 - BOOT_CPU_FRACTION) / host.cpu.freq_hz,
                 "dist": "lognormal", "sigma": BOOT_SIGMA}]
    for scope, seconds in locked:
        lock = {"kind": "lock", "name": START_LOCK, "scope": scope}
        demands += [{**lock, "action": "acquire"}, {"kind": "delay", "duration": seconds},
                    {**lock, "action": "release"}]
    return RequestWorkload.model_validate({"arrivals": {"kind": "batch", "count": count}, "demands": demands})


def _start_locks(stack: Stack) -> list[tuple[str, float]]:
    """Each container layer's locked part of its start (s), with the kernel whose lock it takes:
    the host's for a container with no VM outside it (layers are innermost first), else its
    VM's own."""
    layers = stack.layers
    return [("server" if any(isinstance(outer, Type1) for outer in layers[i + 1:]) else "host",
             layer.params.start_lock_s)
            for i, layer in enumerate(layers) if isinstance(layer, Container) and layer.params.start_lock_s > 0]


def boot_storm(host: HostSpec, stack: Stack, guests: int, seed: int = 0, read_bytes: float | None = None,
               pull_bytes: float = 0.0) -> np.ndarray:
    """Each guest's start-up time (s) when ``guests`` start at once on ``host`` (one guest per group)."""
    first = boot_workload(host, stack, 1, read_bytes, pull_bytes)
    rest = boot_workload(host, stack, 1, read_bytes, pull_bytes, cached=True)
    system = System(host, tuple(Guest(f"g{i}", stack, first if i == 0 else rest) for i in range(guests)))
    stations, sources = system.engine_inputs()
    horizon = 1000.0 * max(1.0, float(guests))
    result = simulate_kernel(stations, sources, RunControl(duration_s=horizon, seed=seed))
    finish = np.array([result.logs[s.name].finish_s[0] for s in sources])
    if np.isnan(finish).any():
        raise RuntimeError("a boot did not finish within the horizon")
    return finish
