"""Virtualization layers (bare metal, type-1 and type-2 hypervisors, containers) and stacks of them."""
