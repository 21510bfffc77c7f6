"""Stacks: layers composed from the guest down to the host, and the profiles that make them.

``Stack.of(["docker", "kvm"])`` is a container inside a KVM guest: demands are lowered by the
container layer, then by KVM, then by the host. Each layer gets its own CPU group nested in the
one below it, so a container's ``cpu.max`` applies within the VM's vCPUs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models.demands import Demand, Stage
from models.hardware.host import HostSpec
from models.profiles import get_profile, load_profiles
from models.virt.baremetal import BareMetal
from models.virt.base import Layer, LayerContext
from models.virt.container import Container
from models.virt.hosted import Type2
from models.virt.hypervisor import Type1

__all__ = ["LAYER_KINDS", "Stack", "layer_profiles", "make_layer"]

LAYER_KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (BareMetal, Type1, Type2, Container)}
_PACKAGE = "models.virt"


def layer_profiles() -> dict[str, Any]:
    """Every layer profile by name."""
    return dict(load_profiles(_PACKAGE))


def make_layer(profile: str, overrides: Mapping[str, Any] | None = None) -> Layer:
    """The layer of ``profile`` with ``overrides`` applied, validated (pydantic errors name keys)."""
    prof = get_profile(_PACKAGE, profile)
    cls = LAYER_KINDS[prof.kind]
    params = cls.params_model.model_validate({**prof.params, **(overrides or {})})
    return cls(profile, params)


def _is_vm(layer: Layer) -> bool:
    return isinstance(layer, Type1)


@dataclass(frozen=True)
class Stack:
    """Layers from the guest (first) down to the host (last)."""

    layers: tuple[Layer, ...]

    @classmethod
    def of(cls, profiles: Sequence[str]) -> Stack:
        """A stack of profiles with their default parameters (``[]`` is bare metal)."""
        return cls(tuple(make_layer(p) for p in (profiles or ["bare-metal"])))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def label(self) -> str:
        """``docker/kvm`` for a container in a KVM guest."""
        return "/".join(self.names)

    def contexts(self, guest: str, host: HostSpec, seed: np.random.SeedSequence | None = None) -> list[LayerContext]:
        """One context per layer: its CPU group, its scope, its own random stream."""
        seeds = (seed or np.random.SeedSequence(0)).spawn(len(self.layers))
        out = []
        for i in range(len(self.layers)):
            outer = self.layers[i + 1 :]
            # The outermost layer's group is the guest; each layer inside nests one level deeper.
            group = (guest, *[layer.name for layer in reversed(self.layers[i:-1])])
            scope = guest if any(_is_vm(layer) for layer in outer) else ""
            out.append(LayerContext(guest, group, scope, host.network.segment_bytes, np.random.default_rng(seeds[i])))
        return out

    def lower(self, demands: list[Demand], contexts: Sequence[LayerContext], host: HostSpec,
              app_group: tuple[str, ...] | None = None) -> list[Stage]:
        """The stages the application's demands cost through every layer and the host.

        The application's own CPU work is charged to ``app_group`` (default: the innermost layer's
        group; a server's thread pool is a group nested in it).
        """
        group = app_group if app_group is not None else contexts[0].group
        level = [replace(d, group=group) for d in demands]
        for layer, ctx in zip(self.layers, contexts, strict=True):
            level = layer.lower(level, ctx)
        return [stage for d in level for stage in host.lower(d)]
