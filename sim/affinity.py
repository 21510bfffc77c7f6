"""Sharing cores among groups bound to core sets (``cpuset``, ``pin``): weighted max-min fairness.

Each group ``i`` has a weight ``w_i`` (``cpu.weight``), a cap ``c_i`` (the most servers its
running jobs can use) and a set of cores it may run on (all of them when it is not bound). A core
does ``per_core`` servers' worth of work. The allocation is the weighted max-min fair one (the
fluid limit of CFS balancing load within each group's cpuset): every group's share rises as
``w_i t`` with one common level ``t`` until the group reaches its cap or a set of groups has
used every core it may run on; those stop there and the rest go on. A share is always feasible:
no set of groups gets more than ``per_core`` times the number of cores in the union of their
sets (a group bound to cores 0 and 1 never gets more than 2 cores, however its neighbours
overlap), and a weight counts between bound and free groups alike.

Groups with the same core set form one *class*; feasibility is a maximum flow from the classes
to the cores (a class may send work to any of its cores, a core takes ``per_core``). A level
where the flow falls short is lowered to the root of the most violated set (the minimum cut's),
which converges in a few steps (Dinkelbach); a class is *tight* when no residual path leads
from it to a core with room left.

The same compiled function serves both engines (the DES calls it through :func:`affinity_shares`;
the compiled kernel calls :func:`affinity_fill` with its preallocated scratch), so they give the
same shares to the last bit. It allocates nothing.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["affinity_fill", "affinity_scratch_sizes", "affinity_shares"]

# as the kernel's loop (kernel_loop._OPTIONS): compiled once and cached, no reference counting, so
# nothing here may allocate
_OPTIONS: dict[str, Any] = dict(cache=True, nogil=True, error_model="numpy", _nrt=False)
_jit = numba.njit(**_OPTIONS)


@_jit
def _shortest_path(masks: np.ndarray, n_cls: int, n_cores: int, eps: float, flow: np.ndarray, src_res: np.ndarray,
                   core_res: np.ndarray, queue: np.ndarray, prev_cls: np.ndarray, prev_core: np.ndarray) -> int:
    """Breadth-first from every class with demand left, through cores and back along flows (a
    class moving work to another of its cores), to a core with room: that core (-1: none).
    ``prev_core[c]`` is the class that reached core ``c``; ``prev_cls[j]`` the core class ``j``
    was reached through (-1: from the source)."""
    for j in range(n_cls):
        prev_cls[j] = -2  # not reached
    for c in range(n_cores):
        prev_core[c] = -2
    head = tail = 0
    for j in range(n_cls):
        if src_res[j] > eps:
            prev_cls[j] = -1
            queue[tail] = j
            tail += 1
    while head < tail:
        j = queue[head]
        head += 1
        for c in range(n_cores):
            if masks[j, c] and prev_core[c] == -2:
                prev_core[c] = j
                if core_res[c] > eps:
                    return c
                for j2 in range(n_cls):
                    if prev_cls[j2] == -2 and flow[j2, c] > eps:
                        prev_cls[j2] = c
                        queue[tail] = j2
                        tail += 1
    return -1


@_jit
def _push(end: int, flow: np.ndarray, src_res: np.ndarray, core_res: np.ndarray, prev_cls: np.ndarray,
          prev_core: np.ndarray) -> float:
    """Push the path's bottleneck from the source to core ``end`` (as :func:`_shortest_path` left
    it); returns the amount."""
    amount = core_res[end]
    j = prev_core[end]
    while prev_cls[j] != -1:
        c = prev_cls[j]
        amount = min(amount, flow[j, c])
        j = prev_core[c]
    amount = min(amount, src_res[j])
    core_res[end] -= amount
    c = end
    j = prev_core[c]
    while prev_cls[j] != -1:
        flow[j, c] += amount
        c = prev_cls[j]
        flow[j, c] -= amount
        j = prev_core[c]
    flow[j, c] += amount
    src_res[j] -= amount
    return amount


@_jit
def _max_flow(demand: np.ndarray, masks: np.ndarray, n_cls: int, n_cores: int, per_core: float, eps: float,
              flow: np.ndarray, src_res: np.ndarray, core_res: np.ndarray, queue: np.ndarray,
              prev_cls: np.ndarray, prev_core: np.ndarray) -> float:
    """Most work per second the cores can take of the classes' ``demand`` (augmenting paths,
    shortest first); leaves ``flow`` (class x core), ``src_res`` (demand not placed) and
    ``core_res`` (room left) for the reachability questions asked after it."""
    for j in range(n_cls):
        src_res[j] = demand[j]
        for c in range(n_cores):
            flow[j, c] = 0.0
    for c in range(n_cores):
        core_res[c] = per_core
    total = 0.0
    end = _shortest_path(masks, n_cls, n_cores, eps, flow, src_res, core_res, queue, prev_cls, prev_core)
    while end >= 0:
        total += _push(end, flow, src_res, core_res, prev_cls, prev_core)
        end = _shortest_path(masks, n_cls, n_cores, eps, flow, src_res, core_res, queue, prev_cls, prev_core)
    return total


@_jit
def _cut_level(weights: np.ndarray, cls: np.ndarray, n: int, out: np.ndarray, state: np.ndarray,
               prev_cls: np.ndarray, prev_core: np.ndarray, per_core: float, t: float) -> float:
    """The level at which the most violated cut is exactly full: its cores' room less its settled
    groups' shares, over its rising groups' weight (``t``, the level so far, if none rise). The
    cut's side is what the last, failed search for an augmenting path reached from the source
    (:func:`_shortest_path` leaves it in ``prev_cls`` and ``prev_core``: -2 where not reached)."""
    room = 0.0
    for c in range(prev_core.shape[0]):
        if prev_core[c] != -2:
            room += per_core
    fixed = weight = 0.0
    for i in range(n):
        if prev_cls[cls[i]] != -2:
            if state[i]:
                weight += weights[i]
            else:
                fixed += out[i]
    return (room - fixed) / weight if weight > 0 else t


@_jit
def _feasible(weights: np.ndarray, cls: np.ndarray, n: int, masks: np.ndarray, nc: int, n_cores: int,
              per_core: float, eps: float, out: np.ndarray, state: np.ndarray, level: float, ws: tuple) -> bool:
    """Whether every rising group can have ``weights[i] x level`` beside the settled shares (a
    maximum flow; ``ws`` keeps it for the reachability questions after)."""
    flow, src_res, demand, core_res, queue, prev_cls, prev_core = ws
    for j in range(nc):
        demand[j] = 0.0
    want = 0.0
    for i in range(n):
        share = weights[i] * level if state[i] else out[i]
        demand[cls[i]] += share
        want += share
    got = _max_flow(demand, masks, nc, n_cores, per_core, eps, flow, src_res, core_res, queue, prev_cls, prev_core)
    return got >= want - eps * (1 + n)


@_jit
def _settle(weights: np.ndarray, caps: np.ndarray, cls: np.ndarray, n: int, out: np.ndarray, state: np.ndarray,
            mark_cls: np.ndarray, t: float) -> int:
    """Settle the rising groups at their cap or in a class with no way to a core with room left
    (``mark_cls`` 0), at level ``t``; all of them if rounding left each just short of a bound.
    Returns how many settled."""
    settled = 0
    for i in range(n):
        if state[i] and (caps[i] <= weights[i] * t * (1 + 1e-12) or not mark_cls[cls[i]]):
            out[i] = min(caps[i], weights[i] * t)
            state[i] = 0
            settled += 1
    if settled == 0:
        for i in range(n):
            if state[i]:
                out[i] = min(caps[i], weights[i] * t)
                state[i] = 0
                settled += 1
    return settled


@_jit
def affinity_fill(weights: np.ndarray, caps: np.ndarray, cls: np.ndarray, n: int, masks: np.ndarray, n_cls: int,
                  n_cores: int, per_core: float, out: np.ndarray, scratch_f: np.ndarray,
                  scratch_i: np.ndarray) -> None:
    """The weighted max-min fair shares (servers) of ``n`` groups into ``out``.

    ``weights[i] > 0``, ``caps[i] >= 0`` (servers), ``cls[i]``: the group's class, a row of
    ``masks`` (``n_cls`` x ``n_cores`` booleans: the cores of the class); ``per_core``: servers
    one core does. ``scratch_f`` and ``scratch_i`` hold at least :func:`affinity_scratch_sizes`.
    """
    nc = n_cls
    o = nc * n_cores
    flow = scratch_f[:o].reshape((nc, n_cores))
    src_res, demand, core_res = scratch_f[o:o + nc], scratch_f[o + nc:o + 2 * nc], scratch_f[o + 2 * nc:]
    q_cls, prev_cls = scratch_i[:nc], scratch_i[nc:2 * nc]
    q_core, prev_core = scratch_i[2 * nc:2 * nc + n_cores], scratch_i[2 * nc + n_cores:2 * nc + 2 * n_cores]
    o = 2 * nc + 2 * n_cores
    state, mark_cls, mark_core = scratch_i[o:o + n], scratch_i[o + n:o + n + nc], scratch_i[o + n + nc:]
    ws = (flow, src_res, demand, core_res, q_cls, prev_cls, prev_core)
    eps = 1e-12 * max(1.0, per_core * n_cores)
    rising = 0
    for i in range(n):
        out[i] = 0.0
        state[i] = 1 if caps[i] > 0 and weights[i] > 0 else 0  # 1: still rising, 0: settled
        rising += state[i]
    t = 0.0
    while rising > 0:
        level = np.inf  # first the level where the next group reaches its cap
        for i in range(n):
            if state[i]:
                level = min(level, caps[i] / weights[i])
        for _ in range(4 * (nc + n_cores) + 8):  # each step drops to a new cut; a few suffice
            if _feasible(weights, cls, n, masks, nc, n_cores, per_core, eps, out, state, level, ws):
                break
            lower = _cut_level(weights, cls, n, out, state, prev_cls, prev_core, per_core, t)
            if not lower < level:  # rounding: no progress
                break
            level = max(lower, t)
        t = level
        _reach_sink(masks, nc, n_cores, eps, flow, core_res, mark_cls, mark_core[:n_cores], q_core)
        rising -= _settle(weights, caps, cls, n, out, state, mark_cls, t)


@_jit
def _reach_sink(masks: np.ndarray, nc: int, n_cores: int, eps: float, flow: np.ndarray, core_res: np.ndarray,
                mark_cls: np.ndarray, mark_core: np.ndarray, queue: np.ndarray) -> None:
    """Mark the classes and cores from which a residual path leads to a core with room left
    (a class not marked cannot grow: it is tight)."""
    for j in range(nc):
        mark_cls[j] = 0
    head = tail = 0
    for c in range(n_cores):
        mark_core[c] = 1 if core_res[c] > eps else 0
        if mark_core[c]:
            queue[tail] = c
            tail += 1
    while head < tail:
        c = queue[head]
        head += 1
        for j in range(nc):  # a class on this core can send more work to it
            if masks[j, c] and not mark_cls[j]:
                mark_cls[j] = 1
                for c2 in range(n_cores):  # ... and so free a core its flow uses now
                    if not mark_core[c2] and flow[j, c2] > eps:
                        mark_core[c2] = 1
                        queue[tail] = c2
                        tail += 1


def affinity_scratch_sizes(n: int, n_cls: int, n_cores: int) -> tuple[int, int]:
    """Float and int scratch lengths :func:`affinity_fill` needs (``n`` groups, ``n_cls`` classes, ``n_cores``)."""
    return n_cls * n_cores + 2 * n_cls + n_cores, 3 * n_cls + 3 * n_cores + n


def affinity_shares(weights: np.ndarray, caps: np.ndarray, cls: np.ndarray, masks: np.ndarray,
                    per_core: float) -> np.ndarray:
    """:func:`affinity_fill` with its scratch made here (servers per group)."""
    n, (n_cls, n_cores) = len(weights), masks.shape
    nf, ni = affinity_scratch_sizes(n, n_cls, n_cores)
    out = np.zeros(n)
    affinity_fill(np.asarray(weights, float), np.asarray(caps, float), np.asarray(cls, np.int64), n,
                  np.asarray(masks, np.bool_), n_cls, n_cores, float(per_core), out, np.zeros(nf),
                  np.zeros(ni, np.int64))
    return out
