"""Experiments: scenarios, the runner, and the experiments built on it, with their results and reports.

Each experiment (:func:`~virtsim.experiments.api.run`, ``overhead``, ``calibrate``, ``density``,
``plan``, ``disk``, ``sweep``) is a function in :mod:`~virtsim.experiments.api` and a ``virtsim``
command; results are tidy tables written into a checked, manifest-sealed folder
(:mod:`~virtsim.experiments.outputs`), from which :mod:`~virtsim.experiments.report` renders reports.
"""
