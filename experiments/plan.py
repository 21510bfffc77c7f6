"""The capacity planner: a mix of services and host types in, hosts per stack out.

``virtsim plan PLAN.toml --out DIR`` writes ``plan.csv`` (per host type and stack: hosts, guests
per host, cores, memory and disk used, the bottleneck, the fleet's start-up time) and
``plan_services.csv`` (each service's per-guest needs), and a plot. A service that cannot fit on
any host type is an error naming it.

The SLO is kept by a utilization cap: no resource of a host, and no station of a guest's own,
above ``1 - headroom``. (A p99 check per host would need a simulation per host; the density
experiment does that for one service.)

Start-up: the guests of a host boot at once, contending for its cores and disk (a boot storm,
simulated: :func:`models.density.startup.boot_storm`); hosts start in parallel, so the fleet is up
when the fullest host is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from experiments.outputs import atomic_write
from experiments.scenario import (
    GuestSpec,
    ScenarioError,
    UniqueStacks,
    check_numa_placement,
    load_toml_model,
    one_layer_stacks,
    stack_label,
)
from models.density.planner import RESOURCES, guest_needs, pack
from models.density.startup import boot_storm
from models.hardware.host import HostSpec
from models.quantities import Bytes
from models.schema import StrictModel
from models.workloads.catalog import WorkloadSpec

__all__ = ["PlanSpec", "load_plan", "plan"]


class HostType(StrictModel):
    """A kind of host to buy: its hardware and its relative cost."""

    name: str = Field(min_length=1)
    host: HostSpec = Field(default_factory=HostSpec)
    cost: float = Field(1.0, ge=0, le=1e12)  # relative cost of one host, for the cheapest choice


class Service(StrictModel):
    """A service to place: how many guests, what each serves, and its memory and disk."""

    name: str = Field(min_length=1)
    guests: int = Field(ge=1, le=10_000_000)
    workload: WorkloadSpec
    app_memory_bytes: Bytes = Field(512 * 2**20, alias="app_memory")
    image_bytes: Bytes = Field(2 * 2**30, alias="image")
    diff_bytes: Bytes = Field(256 * 2**20, alias="diff")

    @field_validator("workload", mode="before")
    @classmethod
    def _generic(cls, value: Any) -> Any:
        return GuestSpec._generic_by_default(value)

    @model_validator(mode="after")
    def _open_loop(self) -> Service:
        arrivals = self.workload.request_workload().arrivals
        if arrivals.kind != "open":
            raise ValueError(
                f"service {self.name!r}: its workload (kind = {self.workload.kind!r}) has {arrivals.kind}-loop "
                "clients, but a plan sizes hosts from a request rate per guest; use kind = \"web\" with a rate, "
                "or kind = \"request\" with arrivals = { kind = \"open\", rate = \"...\" }")
        return self


class PlanSpec(StrictModel):
    """A plan file: stacks to compare, host types to buy, services to place, and the headroom."""

    headroom: float = Field(0.25, ge=0, lt=1)
    host_reserved_bytes: Bytes = Field(2 * 2**30, alias="host_reserved")
    stacks: UniqueStacks = Field(default_factory=lambda: one_layer_stacks("kvm", "firecracker", "docker"),
                                      min_length=1)
    host_types: list[HostType] = Field(min_length=1)
    services: list[Service] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PlanSpec:
        for what, names in (("services", [s.name for s in self.services]),
                            ("host_types", [h.name for h in self.host_types])):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{what}: name {repeated[0]!r} is used more than once; give each a unique name")
        for ht in self.host_types:
            if self.host_reserved_bytes >= ht.host.memory.capacity_bytes:
                raise ValueError(
                    f"host_reserved ({self.host_reserved_bytes / 2**30:.3g} GiB) is not below host type "
                    f"{ht.name!r}'s memory ({ht.host.memory.capacity_bytes / 2**30:.3g} GiB): nothing would be "
                    "left for guests; lower host_reserved or give the host type more memory")
            for service in self.services:
                try:
                    check_numa_placement([service.workload.request_workload()], ht.host.memory.nodes)
                except ValueError as exc:
                    raise ValueError(f"service {service.name!r} on host type {ht.name!r}: "
                                     f"{str(exc).replace('guests[0].workload: ', '')}") from None
        return self


def load_plan(path: str | Path) -> PlanSpec:
    """A plan file, validated."""
    return load_toml_model(path, PlanSpec, "plan file")


def plan(spec: PlanSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per host type and stack, the fleet; and every service's per-guest needs."""
    from experiments.scenario import layer_from_entry
    from models.virt.stack import Stack

    usable = 1 - spec.headroom
    counts = np.array([s.guests for s in spec.services])
    rows, needs_rows = [], []
    for stack_entries in spec.stacks:
        stack = Stack(tuple(layer_from_entry(e) for e in stack_entries))
        feasible_anywhere = {s.name: False for s in spec.services}
        results = []
        for ht in spec.host_types:
            needs = [guest_needs(ht.host, stack, s.workload.request_workload(), s.app_memory_bytes,
                                 s.image_bytes, s.diff_bytes, spec.host_reserved_bytes) for s in spec.services]
            per_guest = np.array([n.per_guest for n in needs])
            per_host = np.array([n.per_host for n in needs])
            too_big = []
            for s, n, g, h in zip(spec.services, needs, per_guest, per_host, strict=True):
                own = max(n.private_stations.values(), default=0.0)
                fits = bool(((g + h) <= usable + 1e-12).all()) and own <= usable
                feasible_anywhere[s.name] |= fits
                if not fits:
                    too_big.append(s.name)
                needs_rows.append({"stack": stack_label(stack_entries), "host_type": ht.name, "service": s.name,
                                   **{f"{r}_per_guest": v for r, v in zip(RESOURCES, g, strict=True)},
                                   "own_station_utilization": own, "fits_one_host": fits})
            if too_big:
                results.append({"host_type": ht.name, "stack": stack_label(stack_entries), "hosts": np.nan,
                                "note": f"infeasible: {', '.join(too_big)} cannot fit on one host"})
                continue
            p = pack(counts, per_guest, per_host, usable)
            per_host_guests = p.counts.sum(axis=1)
            # Hosts start in parallel; the fullest host's boot storm sets the fleet's start-up.
            startup = float(boot_storm(ht.host, stack, int(per_host_guests.max())).max())
            load = p.load * usable  # back to fractions of capacity
            results.append({
                "host_type": ht.name, "stack": stack_label(stack_entries), "hosts": p.hosts,
                "cost": p.hosts * ht.cost, "guests": int(counts.sum()),
                "guests_per_host_mean": float(per_host_guests.mean()),
                "guests_per_host_max": int(per_host_guests.max()),
                "cores_used": float(load[:, RESOURCES.index("cpu")].sum() * ht.host.cpu.cores),
                "memory_used_bytes": float(load[:, RESOURCES.index("memory")].sum()
                                           * (ht.host.memory.capacity_bytes - spec.host_reserved_bytes)),
                "disk_used_bytes": float(load[:, RESOURCES.index("disk_space")].sum() * ht.host.storage.capacity_bytes),
                "bottleneck": p.bottleneck(), "peak_utilization": float(load.max()),
                "fleet_startup_s": startup, "note": "",
            })
        unplaceable = [name for name, ok in feasible_anywhere.items() if not ok]
        if unplaceable:
            raise ScenarioError(f"service {unplaceable[0]!r} cannot fit on any host type with stack "
                                f"{stack_label(stack_entries)!r} (even alone, within headroom {spec.headroom}); "
                                "give it a bigger host type, a smaller app_memory or a lower rate")
        rows += results
    return pd.DataFrame(rows), pd.DataFrame(needs_rows)


def write_plan(out_dir: Path, fleet: pd.DataFrame, needs: pd.DataFrame) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = {"plan": atomic_write(out_dir / "plan.csv", lambda t: fleet.to_csv(t, index=False)),
             "services": atomic_write(out_dir / "plan_services.csv", lambda t: needs.to_csv(t, index=False))}
    table = fleet.pivot_table(index="stack", columns="host_type", values="hosts", sort=False)
    fig, ax = plt.subplots(figsize=(7, 4))
    table.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("hosts needed")
    ax.set_title("Hosts needed per stack and host type")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "plan.png", dpi=120)
    plt.close(fig)
    paths["plot"] = out_dir / "plan.png"
    return paths
