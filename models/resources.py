"""The host resource each station and thread group stands for.

Stations and labelled thread groups are named where they are built (the hardware modules, the
layers, the system, the request workloads); a name is its *kind*, then ``:`` and what it belongs
to (``vhost:g-3``, ``membw:nodes-0-1``, ``lock:g-1:trx_sys``). This module maps a name to the
resource a capacity planner reads (``vhost:g-3`` is a "VMM thread") and tells the host's own
resources from what is not the host's: the wire, pure delays and the load generator's machine.
Density names its limit with it, the steady-state check and the planner pick the host's stations.
"""

from __future__ import annotations

from virtsim.models.hardware.cpu import CPU_STATION
from virtsim.models.hardware.host import CLIENT, DELAY_STATION, SOFTIRQ
from virtsim.models.hardware.memory import MEMBW_STATION
from virtsim.models.hardware.network import NIC_RX_STATION, NIC_TX_STATION, WIRE_STATION
from virtsim.models.hardware.storage import DISK_STATION, DISK_XFER_STATION
from virtsim.models.system import PEER_THREADS, SERVER_THREADS
from virtsim.models.virt.container import IO_MAX, IO_MAX_BPS
from virtsim.models.virt.hosted import USER_NAT
from virtsim.models.virt.hypervisor import BACKEND_THREADS, DRIVER_DOMAIN, DRIVER_DOMAIN_BACKENDS, VCPUS, VMM_LOCK
from virtsim.models.workloads.request import HOST_LOCK, LOCK

__all__ = ["NOT_THE_HOSTS", "RESOURCE_OF_KIND", "is_host_resource", "resource_of", "station_kind"]

RESOURCE_OF_KIND: dict[str, str] = {
    CPU_STATION: "CPU", MEMBW_STATION: "memory bandwidth", DISK_STATION: "disk", DISK_XFER_STATION: "disk",
    NIC_RX_STATION: "network", NIC_TX_STATION: "network", SOFTIRQ: "kernel network threads", VCPUS: "vCPUs",
    SERVER_THREADS: "server threads", PEER_THREADS: "load generator threads on the host",
    **dict.fromkeys(BACKEND_THREADS.values(), "VMM thread"), VMM_LOCK: "VMM thread", USER_NAT: "VMM thread",
    **dict.fromkeys(DRIVER_DOMAIN_BACKENDS, "driver domain"), DRIVER_DOMAIN: "driver domain",
    LOCK: "server lock", HOST_LOCK: "host-wide lock", IO_MAX: "I/O limit (io.max)", IO_MAX_BPS: "I/O limit (io.max)",
}
"""The resource of each kind of station or thread-group label the model builds."""

NOT_THE_HOSTS = (WIRE_STATION, DELAY_STATION, CLIENT)
"""Name prefixes of what is not a host resource: the wire between the machines, pure delays, and
the load generator's machine (its cores, NIC, softirq and tool threads)."""


def station_kind(name: str) -> str:
    """The kind a station or thread-group label was built from: what comes before the first ``:``,
    the last part of a group path (``vhost:g-3`` and ``g-1/vcpu/driver-domain:vcpus`` give
    ``vhost`` and ``driver-domain``; ``cpu`` is its own kind)."""
    return name.split(":", 1)[0].rsplit("/", 1)[-1]


def resource_of(name: str) -> str:
    """The resource a station or thread-group label belongs to (:data:`RESOURCE_OF_KIND`); a name of no
    known kind is its own resource."""
    return RESOURCE_OF_KIND.get(station_kind(name), name)


def is_host_resource(name: str) -> bool:
    """Whether a station or thread-group label is the host's: not the wire, a delay or the load
    generator's machine (:data:`NOT_THE_HOSTS`)."""
    return not name.startswith(NOT_THE_HOSTS)
