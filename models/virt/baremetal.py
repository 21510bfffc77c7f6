"""Bare metal: the application runs on the host kernel; the layer adds nothing."""

from __future__ import annotations

from typing import ClassVar

from virtsim.models.virt.base import Layer, LayerParams

__all__ = ["BareMetal", "BareMetalParams"]


class BareMetalParams(LayerParams):
    """Bare metal has no parameters."""


class BareMetal(Layer):
    """The identity lowering: demands pass to the host unchanged."""

    kind: ClassVar[str] = "bare-metal"
    params_model: ClassVar[type[LayerParams]] = BareMetalParams
