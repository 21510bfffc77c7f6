"""The model: hardware, virtualization layers, workloads, and what they lower to.

A workload's requests are lists of :class:`~virtsim.models.demands.Demand`; each layer of a
stack (:mod:`~virtsim.models.virt`) lowers them, adding its own costs, and the host
(:mod:`~virtsim.models.hardware`) turns the bottom demands into stages on its stations.
:class:`~virtsim.models.system.System` puts a host and its guests together as the engines' input;
:mod:`~virtsim.models.density` and :mod:`~virtsim.models.disks` model footprint, packing and disk usage.
"""
