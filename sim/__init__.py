"""The engines: stations, routes and the two interchangeable event loops that run them.

:mod:`~virtsim.sim.engine` runs a replication with SimPy, :mod:`~virtsim.sim.kernel` the same
model compiled with numba; both know only stations, routes of slots and work in seconds.
:mod:`~virtsim.sim.units` converts the quantities a scenario writes into base units.
"""
