"""Density: a guest's footprint (memory, idle CPU, disk), start-up times, and packing guests onto hosts."""
