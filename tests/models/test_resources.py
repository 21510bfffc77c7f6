"""Every station and thread group the model builds names a resource a planner can read.

The names are built where the parts are (hardware, layers, system, workloads) and classified in
one place, :mod:`virtsim.models.resources`: a new back end or station whose name no one
classified would show up in density's "limit" as its raw name, as a driver domain's vCPUs did
(``driver-domain:vcpus``, before the kind was read from the last part of a group path).
"""

from __future__ import annotations

import warnings

import pytest

from virtsim.experiments.scenario import parse_scenario
from virtsim.models.hardware.memory import membw_nodes, membw_station
from virtsim.models.resources import RESOURCE_OF_KIND, is_host_resource, resource_of, station_kind
from virtsim.models.virt.stack import layer_profiles
from virtsim.models.workloads.request import host_lock_station, lock_name, lock_station

FELTER = {"cpu": "xeon-e5-2665-2s", "memory": "ddr3-2s", "storage": "flash-array", "network": "10gbe"}
WORKLOADS = [{"kind": "web", "rate": "20/s"}, {"kind": "kv-store", "connections": 2}, {"kind": "fio", "jobs": 1},
             {"kind": "oltp", "threads": 2},
             {"kind": "request", "arrivals": {"kind": "closed", "clients": 2}, "peer": "host", "client_threads": 1,
              "demands": [{"kind": "mem", "size": "1MiB", "pattern": "seq", "numa_nodes": 1}]}]


def _names(stack: list, workload: dict) -> set[str]:
    """The station names and thread-group labels of two guests of ``workload`` on ``stack``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an override that changes nothing here is not this test's business
        scenario = parse_scenario({"name": "names", "host": FELTER, "run": {"duration": "1s", "warmup": "0.1s"},
                                   "guests": [{"name": "g", "count": 2, "stack": stack, "workload": workload}]})
        stations, _ = scenario.system().engine_inputs()
    out = set()
    for station in stations:
        out.add(station.name)
        out |= {group.label for group in station.groups.values() if group.label}
    return out


STACKS = [[p] for p in layer_profiles()] + [["docker", "kvm"], ["kvm", "kvm"], ["docker", "xen"],
                                            [{"profile": "docker", "io_max_iops": 1000, "io_max_bps": "100MB/s"}]]


def _stack_id(stack: list) -> str:
    return "/".join(layer if isinstance(layer, str) else f"{layer['profile']}+io.max" for layer in stack)


@pytest.mark.parametrize("stack", STACKS, ids=_stack_id)
def test_every_name_a_stack_builds_is_a_known_resource_or_not_the_hosts(stack: list) -> None:
    names = set().union(*(_names(stack, workload) for workload in WORKLOADS))
    unknown = {n for n in names if is_host_resource(n) and station_kind(n) not in RESOURCE_OF_KIND}
    assert not unknown, f"names no resource is known for: {sorted(unknown)}"
    assert {"cpu", "disk", "membw:nodes-0-0"} <= names  # the check saw the stations it is about


@pytest.mark.parametrize(("name", "resource"), [
    ("cpu", "CPU"), ("membw:nodes-2-3", "memory bandwidth"), ("disk.xfer", "disk"), ("vhost:g-3", "VMM thread"),
    ("vmm-lock:g-1", "VMM thread"), ("netback:g-1/vcpu/kvm", "driver domain"),
    ("g-1/vcpu/driver-domain:vcpus", "driver domain"), ("vcpus:g-1", "vCPUs"), ("threads:g-2", "server threads"),
    ("lock:g-1:trx_sys", "server lock"), ("softirq", "kernel network threads"),
    ("some-new-thing:g", "some-new-thing:g"),
])
def test_a_name_is_read_by_its_kind(name: str, resource: str) -> None:
    assert resource_of(name) == resource


@pytest.mark.parametrize("name", ["wire", "delay", "client.cpu", "client.nic.rx", "client softirq", "client:g-1"])
def test_the_wire_delays_and_the_load_generator_are_not_the_hosts(name: str) -> None:
    assert not is_host_resource(name)


def test_names_read_back_what_they_were_built_from() -> None:
    assert membw_nodes(membw_station(2, 4, block=1)) == (2, 3)
    assert membw_nodes(membw_station(None, 4)) is None and membw_nodes("cpu") is None
    assert station_kind(membw_station(1, 2)) == "membw"
    assert lock_name(lock_station("g-1", "trx_sys")) == "trx_sys"
    assert lock_name(host_lock_station("journal")) == "journal"
    assert lock_name("vmm-lock:g-1") is None and lock_name("cpu") is None
