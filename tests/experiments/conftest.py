from __future__ import annotations

import copy
from typing import Any

import pytest

SMALL: dict[str, Any] = {
    "name": "small",
    "run": {"duration": "0.5s", "warmup": "0.05s", "replications": 2, "seed": 3},
    "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd", "network": "10gbe"},
    "guests": [
        {
            "name": "web",
            "stack": ["docker-nat", "kvm"],
            "workload": {
                "arrivals": {"kind": "open", "rate": "400/s"},
                "demands": [
                    {"kind": "net_in", "size": "200B"},
                    {"kind": "cpu", "cycles": "1M", "dist": "exp"},
                    {"kind": "io", "op": "read", "size": "4KiB"},
                    {"kind": "net_out", "size": "2KiB"},
                ],
            },
        },
        {
            "name": "batch",
            "count": 2,
            "stack": [{"profile": "docker", "cpu_max": "20ms/100ms"}],
            "workload": {
                "arrivals": {"kind": "closed", "clients": 2, "think": "5ms"},
                "demands": [{"kind": "cpu", "cycles": "10M"}],
            },
        },
    ],
}


@pytest.fixture
def small() -> dict[str, Any]:
    """A small valid scenario as a dict (a fresh copy per test)."""
    return copy.deepcopy(SMALL)
