"""Stacks: layers composed from the guest down to the host, and the profiles that make them.

``Stack.of(["docker", "kvm"])`` is a container inside a KVM guest: demands are lowered by the
container layer, then by KVM, then by the host. Each layer gets its own CPU group nested in the
one below it, so a container's ``cpu.max`` applies within the VM's vCPUs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic.fields import FieldInfo

from virtsim.models.demands import Demand, Stage
from virtsim.models.hardware.host import HOST_SOFTIRQ, SOFTIRQ, HostSpec
from virtsim.models.profiles import get_profile, load_profiles
from virtsim.models.virt.baremetal import BareMetal
from virtsim.models.virt.base import EnclosingHypervisor, Layer, LayerContext
from virtsim.models.virt.container import Container
from virtsim.models.virt.hosted import Type2
from virtsim.models.virt.hypervisor import Type1
from virtsim.sim.rng import IndexedStreams
from virtsim.sim.routes import IdleCondition
from virtsim.sim.stations import GroupPath

__all__ = ["LAYER_KINDS", "LayerEntry", "Stack", "layer_of", "layer_profiles", "make_layer", "override_fields"]

LAYER_KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (BareMetal, Type1, Type2, Container)}
_PACKAGE = "virtsim.models.virt"


def layer_profiles() -> dict[str, Any]:
    """Every layer profile by name."""
    return dict(load_profiles(_PACKAGE))


def override_fields(profile: str) -> dict[str, FieldInfo]:
    """The fields an override of ``profile`` may set, by the key a file and a label write (the
    alias, ``halt_poll``, else the field name). :class:`~virtsim.models.profiles.ProfileError`
    (a ``ValueError`` listing the known profiles) for an unknown profile."""
    fields = LAYER_KINDS[get_profile(_PACKAGE, profile).kind].params_model.model_fields
    return {info.alias or name: info for name, info in fields.items()}


def make_layer(profile: str, overrides: Mapping[str, Any] | None = None) -> Layer:
    """The layer of ``profile`` with ``overrides`` applied, validated (pydantic errors name keys;
    ``ValueError`` for an override the other values leave without effect, see :meth:`LayerParams.unused`).
    The layer keeps the overridden fields with their validated values (its ``overrides``, shown
    in its label): an override written by its field name or its alias, with any unit, is the same."""
    prof = get_profile(_PACKAGE, profile)
    cls = LAYER_KINDS[prof.kind]
    fields = cls.params_model.model_fields
    # each override under the key the profile writes (the alias), so that it replaces the
    # profile's value whichever of the field's two names it was written by
    key_of = {name: f.alias or name for name, f in fields.items()}
    written: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key_of.get(key, key) in written:
            raise ValueError(f"profile {profile!r}: {key_of.get(key, key)!r} is overridden twice (as "
                             f"{key!r} and by its other name); write it once")
        written[key_of.get(key, key)] = value
    params = cls.params_model.model_validate({**prof.params, **written})
    by_key = {f.alias or name: name for name, f in fields.items()}
    names = {by_key.get(key, key) for key in written}
    layer = cls(profile, params, {n: getattr(params, n) for n in sorted(names)})
    try:
        layer.refuse_unused(params.unused())
    except ValueError as exc:
        raise ValueError(f"profile {profile!r}: {exc}") from None
    return layer


LayerEntry = str | Mapping[str, Any]
"""A layer as a file writes it: ``"kvm"`` or ``{profile = "kvm", vcpus = 4}``."""


def layer_of(entry: LayerEntry) -> Layer:
    """The layer an entry writes (pydantic's ValidationError, or ValueError for a table without ``profile``)."""
    if isinstance(entry, str):
        return make_layer(entry)
    if "profile" not in entry:
        raise ValueError('a stack entry as a table needs profile = "NAME"')
    return make_layer(str(entry["profile"]), {k: v for k, v in entry.items() if k != "profile"})


@dataclass(frozen=True, eq=False)
class Stack:
    """Layers from the guest (first) down to the host (last): one value, equal to another stack
    when their labels are equal (the label names every layer and every override, canonically:
    a quantity to 12 significant digits)."""

    layers: tuple[Layer, ...]

    @classmethod
    def of(cls, entries: Sequence[LayerEntry]) -> Stack:
        """The stack of these entries, innermost first (``[]`` is bare metal)."""
        return cls(tuple(layer_of(e) for e in (entries or ["bare-metal"])))

    @property
    def label(self) -> str:
        """``docker/kvm`` for a container in a KVM guest; a layer with overrides shows them,
        ``docker{cpu_max=50ms/100ms}/kvm`` (see :attr:`Layer.label`)."""
        return "/".join(layer.label for layer in self.layers)

    def entries(self) -> list[str | dict[str, Any]]:
        """The stack as a scenario file writes it (each layer's :meth:`~Layer.entry`); ``Stack.of``
        of it is an equal stack."""
        return [layer.entry() for layer in self.layers]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stack) and other.label == self.label

    def __hash__(self) -> int:
        return hash(self.label)

    def __deepcopy__(self, memo: dict[int, Any]) -> Stack:
        return self  # immutable: layers and their validated parameters never change

    def with_vm_vcpus(self, vcpus: int) -> Stack:
        """The stack with its outermost VM given ``vcpus`` vCPUs unless it sets its own, and each
        VM nested in it as many as the VM around it has (a nested VM left at its profile's
        default would make nesting look like a machine size: review 7 A1). Other layers as they are."""
        layers = list(self.layers)
        size = vcpus
        for i in reversed(range(len(layers))):
            layer = layers[i]
            if layer.kind not in ("type1", "type2"):
                continue
            if "vcpus" in layer.overrides:
                size = int(layer.overrides["vcpus"])
            else:
                written = layer.entry()
                table = {"profile": written} if isinstance(written, str) else dict(written)
                layers[i] = layer_of({**table, "vcpus": size})
        return Stack(tuple(layers))

    @property
    def names(self) -> tuple[str, ...]:
        """The layers' profile names, innermost first."""
        return tuple(layer.name for layer in self.layers)

    def groups_of(self, guest: str) -> list[GroupPath]:
        """Each layer's group on the host CPU: the outermost is the guest's, each inner layer nests in
        the one outside it (inside a VM: in its vCPUs)."""
        n = len(self.layers)
        out: list[GroupPath] = [()] * n
        for i in reversed(range(n)):
            out[i] = (guest,) if i == n - 1 else (*self.layers[i + 1].inner_group(out[i + 1]), self.layers[i].name)
        return out

    def app_base(self, guest: str) -> GroupPath:
        """The group the application runs in: inside the innermost layer."""
        return self.layers[0].inner_group(self.groups_of(guest)[0])

    def contexts(self, guest: str, host: HostSpec, seed: np.random.SeedSequence | None = None,
                 app: GroupPath = (), app_sleeps: IdleCondition | None = None) -> list[LayerContext]:
        """One context per layer: its CPU group, the kernel it runs on, its own random stream."""
        seeds = (seed or np.random.SeedSequence(0)).spawn(len(self.layers))
        groups = self.groups_of(guest)
        out: list[LayerContext] = []  # built from the host up, returned guest first
        enclosing: EnclosingHypervisor | None = None  # from the host up: the hypervisor each layer runs inside
        for i in reversed(range(len(self.layers))):
            kernel = next((j for j in range(i + 1, len(self.layers)) if self.layers[j].runs_kernel()), None)
            softirq = HOST_SOFTIRQ if kernel is None else (*self.layers[kernel].inner_group(groups[kernel]), SOFTIRQ)
            ctx = LayerContext(guest, groups[i], host, softirq, app, app_sleeps, np.random.default_rng(seeds[i]),
                               enclosing, IndexedStreams(seeds[i]))
            out.append(ctx)
            layer = self.layers[i]
            if isinstance(layer, Type1):
                enclosing = layer.as_enclosing(ctx)
        return out[::-1]

    def lower(self, demands: list[Demand], contexts: Sequence[LayerContext], host: HostSpec,
              streams: IndexedStreams | None = None) -> list[Stage]:
        """The stages the application's demands (already in their groups) cost through every layer
        and the host; ``streams`` draws the host's device times, one stream per host-level demand
        (``None``: the devices' mean times)."""
        level = list(demands)
        for layer, ctx in zip(self.layers, contexts, strict=True):
            level = layer.lower(level, ctx)
        return [stage for i, d in enumerate(level)
                for stage in host.lower(d, None if streams is None else streams.at(i))]
