"""What every virtualization layer is: a validated parameter set and a lowering of demands.

A layer receives the demands of the level above it (the application's, or another layer's) and
returns the demands of the level below: the same demands, possibly changed (a nested page walk,
a read served by the host's page cache), plus the costs the layer itself adds, each tagged with
the layer's name so that a request's time can be attributed to it. Each cost is work on a named
group of the host CPU (the guest's vCPUs, a VMM thread, a softirq thread) or a delay.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
from pydantic.fields import FieldInfo

from virtsim.models.demands import Demand
from virtsim.models.hardware.host import HOST_SOFTIRQ, HostSpec
from virtsim.models.quantities import value_text
from virtsim.models.schema import StrictModel
from virtsim.sim.rng import IndexedStreams
from virtsim.sim.routes import IdleCondition, Slot, StationSpec
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = ["EnclosingHypervisor", "Layer", "LayerContext", "LayerParams", "cpu_demand", "delay_demand",
           "station_demand"]


class LayerParams(StrictModel):
    """Base of every layer's parameters: unknown keys are errors, values are read-only."""

    def unused(self) -> dict[str, str]:
        """The fields these values leave without effect (by field name), each with why and what
        would give it one: an override of one is refused, as a misspelt key is (none here)."""
        return {}


@dataclass(frozen=True)
class EnclosingHypervisor:
    """The hypervisor whose VM a nested hypervisor runs in, as that one's exits see it (cycles):
    the world switch into it and back, a whole exit (switch plus handling), and its emulation
    work per switch between its guest hypervisor and that one's guest; and whether it maps its
    guest's memory by nested paging (only then can it offer nested paging to a hypervisor in it:
    KVM's nested EPT needs EPT in L0)."""

    switch_cycles: float
    exit_cycles: float
    transition_cycles: float
    nested_paging: bool = True


@dataclass(frozen=True)
class LayerContext:
    """Where a layer lowers: for which guest, in which CPU group, on which host and kernel.

    ``group``: the layer's own group on the host CPU. ``softirq``: the receive threads of the
    kernel the layer runs on (the host's, or a guest kernel's inside a VM). ``app``: the
    application's group; ``app_sleeps``: when its thread sleeps waiting for a message (``None``:
    always, a thread per connection).
    """

    guest: str
    group: GroupPath
    host: HostSpec = field(default_factory=HostSpec)
    softirq: GroupPath = HOST_SOFTIRQ
    app: GroupPath = ()
    app_sleeps: IdleCondition | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    enclosing: EnclosingHypervisor | None = None  # the hypervisor this layer runs inside the VM of
    streams: IndexedStreams | None = None  # one stream per demand the layer lowers (see lower)

    @property
    def segment_bytes(self) -> float:
        """The host network's segment size (bytes; TSO/GSO), per which packet costs are paid."""
        return self.host.network.segment_bytes

    def app_idle(self) -> IdleCondition | None:
        """The condition "the application's thread is asleep" (``None``: it always is)."""
        return self.app_sleeps


class Layer(ABC):
    """A virtualization layer built from a profile (``name``) and validated parameters.

    :meth:`lower` is one template: each demand goes to the hook for its kind (``lower_cpu``,
    ``lower_mem``, ``lower_io``, ``lower_net_in``, ``lower_net_out``), whose default passes it
    on unchanged; a layer overrides the hooks of the demands it changes.
    """

    kind: ClassVar[str]
    params_model: ClassVar[type[LayerParams]]

    def __init__(self, name: str, params: LayerParams, overrides: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.params = params
        # the fields (by name) a file overrode, with their validated values: what makes this
        # layer other than its profile, shown in its label (see make_layer)
        self.overrides: dict[str, Any] = dict(overrides or {})

    def _written(self) -> list[tuple[str, FieldInfo, Any]]:
        """Each override as (the key a file writes, its field, its value), in key order."""
        fields = type(self.params).model_fields
        return sorted((fields[f].alias or f, fields[f], v) for f, v in self.overrides.items())

    @property
    def label(self) -> str:
        """The profile's name, with the overrides in key order and canonical values:
        ``docker{cpu_max=50ms/100ms}``, ``kvm{halt_poll=0s,vcpus=4}``."""
        if not self.overrides:
            return self.name
        return f"{self.name}{{{','.join(f'{key}={value_text(info, v)}' for key, info, v in self._written())}}}"

    def entry(self) -> str | dict[str, Any]:
        """The layer as a scenario file writes it, and reads back as an equal layer: ``"kvm"``
        or ``{"profile": "kvm", "vcpus": 4, "halt_poll": 5e-05}`` (quantities in their base
        unit, the number itself, so it reads back exactly)."""
        if not self.overrides:
            return self.name
        return {"profile": self.name, **{key: v for key, _, v in self._written()}}

    def lower(self, demands: list[Demand], ctx: LayerContext) -> list[Demand]:
        """The demands one level down: those given, changed as the layer changes them, plus its own."""
        out: list[Demand] = []
        for i, d in enumerate(demands):
            hook = getattr(self, f"lower_{d.kind}", None)
            if hook is None:
                out.append(d)
                continue
            # ctx.rng is the i-th demand's own stream, so its draws do not depend on the block size
            out += hook(d, ctx if ctx.streams is None else replace(ctx, rng=ctx.streams.at(i)))
        return out

    def unused_here(self, ctx: LayerContext, inner: Sequence[Layer] = ()) -> dict[str, str]:
        """The fields the host and the layers below (``ctx``) and the layers inside this one
        (``inner``, from the guest's) leave without effect, each with why: beside those its own
        values switch off (:meth:`LayerParams.unused`)."""
        return {}

    def unused_by(self, guest: str, route: Sequence[Slot]) -> dict[str, str]:
        """The fields a guest's workload leaves without effect, each with why: those whose
        stations or stages its requests never visit (``route``: the slots of its requests)."""
        return {}

    def refuse_unused(self, unused: Mapping[str, str]) -> None:
        """Raise ``ValueError`` naming each override in ``unused`` (field name: why it changes
        nothing), as a misspelt key is refused: a run that ignores what a file asks for would
        answer another question with exit status 0."""
        fields = type(self.params).model_fields
        by_reason: dict[str, list[str]] = {}
        for name in sorted(self.overrides):
            if name in unused:
                by_reason.setdefault(unused[name], []).append(fields[name].alias or name)
        if by_reason:
            raise ValueError("; ".join(
                f"{', '.join(keys)} would change nothing: {why}" for why, keys in by_reason.items())
                + "; remove the override, or change what switches it off")

    def inner_group(self, group: GroupPath) -> GroupPath:
        """The group the layers and the application inside this one run in (default: its own)."""
        return group

    def runs_kernel(self) -> bool:
        """Whether the layer runs a kernel of its own (a VM) that inner layers run on."""
        return False

    def group_spec(self) -> GroupSpec:
        """How the host CPU schedules this layer's group (default: an ordinary process group)."""
        return GroupSpec()

    def groups(self, ctx: LayerContext) -> dict[GroupPath, GroupSpec]:
        """Groups on the host CPU beyond the layer's own (a VM's vCPUs, VMM threads)."""
        return {}

    def stations(self, ctx: LayerContext) -> list[StationSpec]:
        """Stations the layer's demands visit beyond the host's own (a lock, an io.max throttle)."""
        return []

    def background(self, ctx: LayerContext) -> dict[GroupPath, int]:
        """Always-running jobs the layer puts on the host CPU, by group (a group's quota, if it
        has one in :meth:`groups`, caps what they take)."""
        return {}

    def check(self, cores: int, threads_per_core: int = 1) -> None:  # noqa: B027 - optional hook
        """Raise ValueError if the parameters cannot hold on ``cores`` CPUs of ``threads_per_core``
        hardware threads each: the host's cores for the outermost layer, the vCPUs of the VM it runs
        in (one thread each) for a layer inside a VM. Nothing to check by default."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def cpu_demand(cycles: np.ndarray, layer: str, group: GroupPath, label: str = "",
               when_idle: IdleCondition | None = None, per_client: int = 0) -> Demand:
    """CPU work a layer adds, charged to ``group``."""
    return Demand("cpu", np.asarray(cycles, dtype=float), layer, group, label=label, when_idle=when_idle,
                  per_client=per_client)


def delay_demand(seconds: np.ndarray, layer: str, label: str, when_idle: IdleCondition | None = None) -> Demand:
    """A delay a layer adds (holding no resource)."""
    return Demand("delay", np.asarray(seconds, dtype=float), layer, label=label, when_idle=when_idle)


def station_demand(station: str, seconds: np.ndarray, layer: str, action: str = "") -> Demand:
    """Service a layer adds at one of its own stations (or, with ``action``, a lock it takes or gives)."""
    return Demand("station", np.asarray(seconds, dtype=float), layer, station=station,
                  action=action)  # type: ignore[arg-type]
