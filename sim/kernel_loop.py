"""The compiled event loop: the DES engine's model, step for step, in numba.

Everything here works on flat arrays built by :mod:`virtsim.sim.kernel`; each table is a 2-D
array whose columns are named by the constants below (``RQ_*`` for requests, ``ND_*`` for the
groups of shared stations, and so on), so a helper takes the few tables it touches. The loop
replays what :mod:`virtsim.sim.engine` does with SimPy, event for event, so the two engines give
the same answers, not merely close ones:

- one event queue ordered by (time, priority, scheduling order), as SimPy orders events; a new
  process starts at *urgent* priority, everything else is *normal*;
- a request that finishes at a station resumes one event later (SimPy's ``succeed``), except
  after a delay, whose timeout is itself the event the request waits for;
- the processor-sharing station is the same fluid model (weighted groups, caps, quotas, core
  affinity, SMT, FIFO thread groups, background jobs); its wake-up timer is kept beside the
  queue, one per station, with the scheduling order the DES's timer would get: a timer the DES
  would find stale when it fires is simply replaced here, so it costs nothing;
- leaves (groups holding jobs) are kept in the order they were created, as the DES's dict is,
  since that order decides which of several jobs finishing at one instant goes first.

The loop stops before an event it could not finish without more room (event queue, requests,
samples) and says what it needs; the caller grows the arrays and calls again. Nothing is lost:
the stop happens before the event is taken off the queue, or, for a closed client making
requests with no work one after another within one event, between two of them (the client is
taken up again first on the next call).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np

from virtsim.sim.affinity import affinity_fill

# station kinds, stream kinds, step actions
FIFO, DELAY, SHARED, LOCK, STREAM = 0, 1, 2, 3, 4
OPEN, CLOSED, BATCH, TRACE = 0, 1, 2, 3
SUBMIT, ACQUIRE, RELEASE = 0, 1, 2
# why the loop returned
DONE, NEED_HEAP, NEED_REQUESTS, NEED_WORK, NEED_GAPS = 0, 1, 2, 3, 4
# counters (State.ctr)
C_HEAP_N, C_SEQ, C_REQ_N, C_INFLIGHT, C_NEED_STREAM, C_GAPS_USED, C_ROWS_USED, C_PENDING = 0, 1, 2, 3, 4, 5, 6, 7
# event table (ev_i): key (priority, then scheduling order), kind, two arguments
EV_KEY, EV_KIND, EV_A, EV_B = 0, 1, 2, 3
# requests: rq_i and rq_f
# RQ_KEEP 1: the request's job keeps its thread when done, for its next stage (SharedStation.submit)
RQ_STREAM, RQ_ROW, RQ_STEP, RQ_NEXT, RQ_SEQ, RQ_CHILD, RQ_SIB, RQ_KEEP = range(8)
RQ_COLS = 8
RQ_T0, RQ_TAG, RQ_ARRIVAL, RQ_FINISH = 0, 1, 2, 3
# groups of shared stations (nodes), changing: nd_i and nd_f
# time slices' top-level groups: ND_WANT threads runnable, ND_HOLD slots held, ND_WOKEN its
# threads just woke, ND_ASK threads asked for (scratch of _allocate_sliced); ND_KEPT threads held
# between two stages of one request (stations._Leaf.kept); ND_HOME 1 + the slot a top-level group
# last gave up when its threads fell (0: none; Slicer._home)
(ND_JOBS, ND_RUNNING, ND_ROOT_JOB, ND_HEAP_N, ND_WAIT_HEAD, ND_WAIT_TAIL, ND_BG, ND_LEAF, ND_THROTTLED,
 ND_MARK, ND_FIRST, ND_LAST, ND_NEXT, ND_WANT, ND_HOLD, ND_WOKEN, ND_ASK, ND_KEPT, ND_HOME) = range(19)
ND_COLS = 19
# ND_PROG: a leaf's progress per job: its rate, set with it; a stream leaf's less what its bandwidth
# domain lacks (so the hot loops read one column, whatever the leaf)
# time slices: ND_SV a top-level group's virtual runtime (s, at the default weight), ND_SW its
# weight, ND_SLEPT when its last thread went to sleep (NaN: never), ND_HELD the cores' worth it
# holds (scratch of _allocate_sliced)
(ND_IDLE, ND_VTIME, ND_RATE, ND_WORK, ND_USED, ND_PERIOD_END, ND_GRATE, ND_CAP, ND_PROG,
 ND_SV, ND_SW, ND_SLEPT, ND_HELD) = range(13)
# nodes, fixed: gi and gf; G_DOMAIN: a leaf of memory streams: its bandwidth domain (a STREAM station), else -1
G_PARENT, G_DEPTH, G_SPEC, G_THREADS, G_PINNED, G_DOMAIN = range(6)
G_WEIGHT, G_SERVERS, G_CAPCOUNT, G_QUOTA, G_PERIOD = range(5)
# stations, changing: st_i and st_f; under time slices ST_WANT the runnable threads, ST_SHARED the
# cores with more than one busy hardware thread
ST_BUSY_NOW, ST_BUSY, ST_Q_HEAD, ST_Q_TAIL, ST_WAKE_KEY, ST_OVER, ST_SEQ, ST_ACT_N, ST_WANT, ST_SHARED = range(10)
# ST_DEMAND: a bandwidth domain's streams' core time asked for (scratch of _stream_progress)
ST_WORK, ST_IDLE_SINCE, ST_SINCE, ST_WAKE_T, ST_DEMAND = range(5)
# stations, fixed: si and sf; S_DOMAINS: a shared station some bandwidth domain's streams run on;
# time slices (sim.slices): S_SLOTS hardware threads (0: fluid sharing) from S_SL_LO in the slot
# tables, top-level groups in order of name from S_TOP_LO to S_TOP_HI in Model.top (the root, for
# the station's own jobs, first); S_WAKEUP < 0: no wake-up preemption
S_KIND, S_TPS, S_ROOT, S_PINNED, S_QLO, S_QHI, S_ACT_LO, S_BG_LO, S_BG_HI, S_DOMAINS = range(10)
S_SLOTS, S_SL_LO, S_TOP_LO, S_TOP_HI = range(10, 14)
S_SERVERS, S_SMT, S_LATENCY, S_MIN_SLICE, S_WAKEUP, S_CREDIT, S_MIN_RUN = range(7)
S_FCOLS = 7
# time slices' slots, per station from si[S_SL_LO]: sl_i its group (-1: free) and the group that
# last gave it up when its threads fell (-1: none); sl_f when its slice ends, and when that
# release was and when the released slice would have ended (s); and, at a slot whose number is
# a core's, that core's min_vruntime (s); when its occupant began running there, and the
# released slice's start
SL_OCC, SL_REL_G = range(2)
SL_END, SL_REL_T, SL_REL_END, SL_MIN_V, SL_START, SL_REL_START = range(6)
SL_COLS = 6
# streams: sm_i changing, ki and kf fixed
# SM_EPOCH: an open stream's arrival schedule, bumped by set_rate (an older arrival event is void);
# SM_J: a trace's next time, or for an open stream 1 once it has started (drawn its first gap)
# SM_PAUSE: a closed client told by set_paused to stop after its current request; SM_IDLE: it has
SM_J, SM_ROW, SM_ROW_END, SM_GAP, SM_GAP_END, SM_EPOCH, SM_PAUSE, SM_IDLE = range(8)
K_KIND, K_SOURCE, K_LEN, K_COUNT, K_TRACE_LO = range(5)
# K_SCALE: what a pooled gap is multiplied by (an open stream's mean gap, s, which set_rate
# changes; 1 for think times, pooled as drawn); K_NEXT: an open stream's next arrival (s)
K_AT, K_THINK, K_SCALE, K_NEXT = range(4)
# route steps per stream and slot
P_WHAT, P_STATION, P_NODE, P_COND_STATION, P_COND_NODE = range(5)

_E_INIT, _E_ARRIVE, _E_SERVE, _E_RESUME, _E_FIFO, _E_WAKE = 0, 1, 2, 3, 4, 5
E_FIFO = _E_FIFO  # a FIFO station's completion (EV_A the station): what the caller reads of the queue
_URGENT, _NORMAL = 0, 1
_PRIO_SHIFT = 56
_TOL = 1e-12  # as stations._TOL
_DEFAULT_WEIGHT = 100.0
_INF = np.inf


class Model(NamedTuple):
    """What does not change during a run."""

    end_s: float
    si: np.ndarray  # stations (S_*)
    sf: np.ndarray
    gi: np.ndarray  # nodes (G_*)
    gf: np.ndarray
    cores: np.ndarray  # (nodes, cores) bool: a pinned group's core set
    shared: np.ndarray  # the shared stations' indices
    q_nodes: np.ndarray  # groups with a quota, per station from si[S_QLO] to si[S_QHI]
    bg: np.ndarray  # (n, 2): background jobs' node and count, per station from S_BG_LO to S_BG_HI
    ki: np.ndarray  # streams (K_*)
    kf: np.ndarray
    steps: np.ndarray  # (streams, slots, 5): P_*
    cond_min: np.ndarray  # (streams, slots): an idle condition's minimum idle time, s
    trace_t: np.ndarray  # trace times, per stream from ki[K_TRACE_LO]
    top: np.ndarray  # time slices: per station its root, then its top-level groups in order of name


class State(NamedTuple):
    """What a run changes; the caller grows arrays between calls of :func:`run_until`."""

    ctr: np.ndarray  # C_*
    clock: np.ndarray  # [now]
    ev_t: np.ndarray
    ev_i: np.ndarray
    st_i: np.ndarray
    st_f: np.ndarray
    act: np.ndarray  # per shared station, from si[S_ACT_LO]: its leaves in creation order
    nd_i: np.ndarray
    nd_f: np.ndarray
    scratch_i: np.ndarray  # 4 (nodes + 1)
    scratch_p: np.ndarray  # int, nodes + 1: core classes
    scratch_m: np.ndarray  # bool, (nodes + 1, cores): the core classes' cores
    scratch_a: np.ndarray  # float, for affinity_fill (affinity_scratch_sizes)
    scratch_b: np.ndarray  # int, for affinity_fill
    scratch_f: np.ndarray  # >= 3 nodes + 3
    sm_i: np.ndarray
    work: np.ndarray  # (rows, slots): sampled work, s
    gaps: np.ndarray  # arrival gaps or think times, s
    rq_i: np.ndarray
    rq_f: np.ndarray
    rq_stage: np.ndarray  # (requests, slots): time spent at each slot, s
    pairs: np.ndarray  # the pairing heap's scratch, one per request
    sl_i: np.ndarray  # time slices' slots (SL_OCC, SL_REL_G), per station from si[S_SL_LO]
    sl_f: np.ndarray  # (SL_END, SL_REL_T, SL_REL_END, SL_MIN_V, SL_START, SL_REL_START)


# error_model="numpy": no division check on the hot path (every divisor here is nonzero by
# construction); cache=True: compiled once, then loaded from __pycache__
# _nrt=False: no reference counting. Every array is made by the caller and lives as long as the
# run; counting references to them cost ~300 ns per event (two atomic operations per array each
# time a helper touched the state), more than all the work. So nothing here may allocate.
_OPTIONS: dict[str, Any] = dict(cache=True, nogil=True, error_model="numpy", _nrt=False)
_jit = numba.njit(**_OPTIONS)
# hot paths, inlined: no call, and no tuples of arrays to pass
_inline = numba.njit(**_OPTIONS, inline="always")

# -- the event queue: a binary heap over (time, key) ------------------------------------------


@_jit
def _ev_less(ev_t: np.ndarray, ev_i: np.ndarray, i: int, j: int) -> bool:
    """Whether queue entry ``i`` comes before entry ``j`` (by time, then key)."""
    return ev_t[i] < ev_t[j] or (ev_t[i] == ev_t[j] and ev_i[i, EV_KEY] < ev_i[j, EV_KEY])


@_jit
def _ev_before(ev_t: np.ndarray, ev_i: np.ndarray, i: int, t: float, key: int) -> bool:
    """Whether queue entry ``i`` comes before an event at (t, key)."""
    return ev_t[i] < t or (ev_t[i] == t and ev_i[i, EV_KEY] < key)


@_jit
def _ev_move(ev_t: np.ndarray, ev_i: np.ndarray, dst: int, src: int) -> None:
    """Copy queue entry ``src`` over entry ``dst``."""
    ev_t[dst] = ev_t[src]
    for c in range(4):
        ev_i[dst, c] = ev_i[src, c]


@_jit
def _ev_put(ev_t: np.ndarray, ev_i: np.ndarray, i: int, t: float, key: int, kind: int, a: int, b: int) -> None:
    """Write an event (time ``t`` in s, key, kind, arguments) into queue slot ``i``."""
    ev_t[i] = t
    ev_i[i, EV_KEY] = key
    ev_i[i, EV_KIND] = kind
    ev_i[i, EV_A] = a
    ev_i[i, EV_B] = b


@_jit
def _next_key(ctr: np.ndarray, prio: int) -> int:
    """The key of an event scheduled now: its priority, then its place in scheduling order."""
    key = (prio << _PRIO_SHIFT) | ctr[C_SEQ]
    ctr[C_SEQ] += 1
    return key


@_jit
def _schedule(ctr: np.ndarray, ev_t: np.ndarray, ev_i: np.ndarray, t: float, prio: int, kind: int, a: int,
              b: int) -> None:
    """Push an event at time ``t`` (s) with priority ``prio``, after every event already scheduled for (t, prio)."""
    key = _next_key(ctr, prio)
    n = ctr[C_HEAP_N]
    ctr[C_HEAP_N] = n + 1
    while n > 0:  # sift the hole up, then fill it
        p = (n - 1) >> 1
        if not (t < ev_t[p] or (t == ev_t[p] and key < ev_i[p, EV_KEY])):
            break
        _ev_move(ev_t, ev_i, n, p)
        n = p
    _ev_put(ev_t, ev_i, n, t, key, kind, a, b)


@_jit
def _pop_event(ctr: np.ndarray, ev_t: np.ndarray, ev_i: np.ndarray) -> None:
    """Remove the first event from the queue (the caller has read it from slot 0)."""
    n = ctr[C_HEAP_N] - 1
    ctr[C_HEAP_N] = n
    if n == 0:
        return
    t, key = ev_t[n], ev_i[n, EV_KEY]  # the last entry, sifted down from the top's hole
    kind, a, b = ev_i[n, EV_KIND], ev_i[n, EV_A], ev_i[n, EV_B]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _ev_less(ev_t, ev_i, child + 1, child):
            child += 1
        if not _ev_before(ev_t, ev_i, child, t, key):
            break
        _ev_move(ev_t, ev_i, i, child)
        i = child
    _ev_put(ev_t, ev_i, i, t, key, kind, a, b)


# -- a group's running jobs: a pairing heap keyed by (finish tag, submit order) ---------------


@_jit
def _meld(rq_i: np.ndarray, rq_f: np.ndarray, a: int, b: int) -> int:
    """Meld the pairing heaps rooted at jobs ``a`` and ``b`` (-1: empty); returns the new root."""
    if a < 0:
        return b
    if b < 0:
        return a
    if rq_f[b, RQ_TAG] < rq_f[a, RQ_TAG] or (rq_f[b, RQ_TAG] == rq_f[a, RQ_TAG] and rq_i[b, RQ_SEQ] < rq_i[a, RQ_SEQ]):
        a, b = b, a
    rq_i[b, RQ_SIB] = rq_i[a, RQ_CHILD]
    rq_i[a, RQ_CHILD] = b
    return a


@_jit
def _job_push(rq_i: np.ndarray, rq_f: np.ndarray, nd_i: np.ndarray, node: int, r: int) -> None:
    """Add request ``r`` (its finish tag set) to ``node``'s running jobs."""
    rq_i[r, RQ_CHILD] = -1
    rq_i[r, RQ_SIB] = -1
    nd_i[node, ND_ROOT_JOB] = _meld(rq_i, rq_f, nd_i[node, ND_ROOT_JOB], r)
    nd_i[node, ND_HEAP_N] += 1


@_jit
def _job_pop(rq_i: np.ndarray, rq_f: np.ndarray, nd_i: np.ndarray, pairs: np.ndarray, node: int) -> int:
    """Remove and return ``node``'s running job with the smallest (finish tag, submit order)."""
    top = nd_i[node, ND_ROOT_JOB]
    m = 0  # first pass: meld the children in pairs, left to right
    c = rq_i[top, RQ_CHILD]
    while c >= 0:
        d = rq_i[c, RQ_SIB]
        rq_i[c, RQ_SIB] = -1
        if d < 0:
            pairs[m] = c
            m += 1
            break
        nxt = rq_i[d, RQ_SIB]
        rq_i[d, RQ_SIB] = -1
        pairs[m] = _meld(rq_i, rq_f, c, d)
        m += 1
        c = nxt
    root = -1  # second pass: right to left
    for i in range(m - 1, -1, -1):
        root = _meld(rq_i, rq_f, pairs[i], root)
    nd_i[node, ND_ROOT_JOB] = root
    nd_i[node, ND_HEAP_N] -= 1
    return top


# -- idleness and FIFO queues -------------------------------------------------------------


@_jit
def _note_busy(st_i: np.ndarray, st_f: np.ndarray, st: int, delta: int, now: float) -> None:
    """:meth:`Station._note_busy <virtsim.sim.stations.Station._note_busy>` for station ``st`` at time ``now`` (s)."""
    st_i[st, ST_BUSY_NOW] += delta
    if st_i[st, ST_BUSY_NOW] == 0:
        st_f[st, ST_IDLE_SINCE] = now


@_jit
def _idle_for(si: np.ndarray, st_i: np.ndarray, st_f: np.ndarray, nd_i: np.ndarray, nd_f: np.ndarray, st: int,
              node: int, now: float) -> float:
    """:meth:`Station.idle_for <virtsim.sim.stations.Station.idle_for>`: seconds station ``st`` (or group ``node``)
    has been idle; ``-inf`` while busy, ``inf`` for a delay.
    """
    kind = si[st, S_KIND]
    if kind == DELAY:
        return _INF
    if kind == SHARED:
        return -_INF if nd_i[node, ND_JOBS] else now - nd_f[node, ND_IDLE]
    return -_INF if st_i[st, ST_BUSY_NOW] else now - st_f[st, ST_IDLE_SINCE]


@_jit
def _append(owners: np.ndarray, owner: int, first: int, last: int, items: np.ndarray, link: int, item: int) -> None:
    """Append ``item`` to the singly linked list whose ends are ``owners[owner, first/last]`` and
    whose links are ``items[:, link]`` (-1 ends a list): a FIFO queue, a line for a thread, a
    node's children."""
    items[item, link] = -1
    if owners[owner, last] < 0:
        owners[owner, first] = item
    else:
        items[owners[owner, last], link] = item
    owners[owner, last] = item


@_jit
def _enqueue(st_i: np.ndarray, rq_i: np.ndarray, st: int, r: int) -> None:
    """Append request ``r`` to FIFO station ``st``'s queue."""
    _append(st_i, st, ST_Q_HEAD, ST_Q_TAIL, rq_i, RQ_NEXT, r)


@_jit
def _dequeue(st_i: np.ndarray, rq_i: np.ndarray, st: int) -> int:
    """Remove and return the first request in FIFO station ``st``'s queue (it must not be empty)."""
    r = st_i[st, ST_Q_HEAD]
    st_i[st, ST_Q_HEAD] = rq_i[r, RQ_NEXT]
    if st_i[st, ST_Q_HEAD] < 0:
        st_i[st, ST_Q_TAIL] = -1
    return r


@_jit
def _lock_account(st_i: np.ndarray, st_f: np.ndarray, st: int, now: float) -> None:
    """Add the token-holding time of lock station ``st`` since the last change to its work (s)."""
    st_f[st, ST_WORK] += st_i[st, ST_BUSY] * (now - st_f[st, ST_SINCE])
    st_f[st, ST_SINCE] = now


# -- the processor-sharing station ------------------------------------------------------------


@_jit
def _count(gi: np.ndarray, nd_i: np.ndarray, nd_f: np.ndarray, node: int, delta: int, now: float) -> None:
    """Count ``delta`` more jobs (running or waiting) at ``node`` and its ancestors, noting when each becomes idle."""
    n = node
    while n >= 0:
        nd_i[n, ND_JOBS] += delta
        if nd_i[n, ND_JOBS] == 0:
            nd_f[n, ND_IDLE] = now
        n = gi[n, G_PARENT]


@_jit
def _run(gi: np.ndarray, gf: np.ndarray, nd_i: np.ndarray, st_i: np.ndarray, st: int, node: int, delta: int) -> None:
    """Count ``delta`` more running jobs at ``node`` and its ancestors, tracking how many caps are exceeded."""
    n = node
    while n >= 0:
        before = nd_i[n, ND_RUNNING]
        after = before + delta
        nd_i[n, ND_RUNNING] = after
        cap = gf[n, G_CAPCOUNT]
        if cap < _INF:
            st_i[st, ST_OVER] += int(after > cap) - int(before > cap)
        n = gi[n, G_PARENT]


@_jit
def _own(nd_i: np.ndarray, n: int) -> int:
    """Jobs of the group itself that use capacity (running, background and kept threads; waiting ones do not)."""
    return nd_i[n, ND_HEAP_N] + nd_i[n, ND_BG] + nd_i[n, ND_KEPT]


@_jit
def _leaf(si: np.ndarray, nd_i: np.ndarray, nd_f: np.ndarray, st_i: np.ndarray, act: np.ndarray, st: int,
          node: int) -> None:
    """Make the group's leaf if it has none (a new leaf goes last in creation order)."""
    if nd_i[node, ND_LEAF]:
        return
    nd_i[node, ND_LEAF] = 1
    nd_f[node, ND_VTIME] = 0.0
    nd_f[node, ND_RATE] = 0.0
    nd_f[node, ND_PROG] = 0.0
    act[si[st, S_ACT_LO] + st_i[st, ST_ACT_N]] = node
    st_i[st, ST_ACT_N] += 1


@_inline
def _clocks(m: Model, s: State, st: int, dt: float, streams: bool) -> None:
    """Each leaf's virtual clock and work, each quota group's use, ``dt`` seconds on at the
    rates since the last change (a leaf's clock at its progress, its work at its rate: the two
    differ only for streams slowed by their domain)."""
    gi, nd_i, nd_f, st_f, act, q_nodes = m.gi, s.nd_i, s.nd_f, s.st_f, s.act, m.q_nodes
    if m.si[st, S_SLOTS]:
        _sl_advance(m, s, st, dt)
    lo = m.si[st, S_ACT_LO]
    for i in range(s.st_i[st, ST_ACT_N]):
        leaf = act[lo + i]
        rate = nd_f[leaf, ND_RATE]
        jobs = _own(nd_i, leaf)  # background jobs keep cores busy too
        if rate > 0 and jobs > 0:
            nd_f[leaf, ND_VTIME] += nd_f[leaf, ND_PROG] * dt
            work = rate * jobs * dt
            st_f[st, ST_WORK] += work
            nd_f[leaf, ND_WORK] += work
    if streams:  # the streams' bytes, in full-speed stream seconds, to their domains
        for i in range(s.st_i[st, ST_ACT_N]):
            leaf = act[lo + i]
            domain = gi[leaf, G_DOMAIN]
            jobs = _own(nd_i, leaf)
            if domain >= 0 and nd_f[leaf, ND_RATE] > 0 and jobs > 0:
                st_f[domain, ST_WORK] += nd_f[leaf, ND_PROG] * jobs * dt
    for q in range(m.si[st, S_QLO], m.si[st, S_QHI]):
        g = q_nodes[q]
        nd_f[g, ND_USED] += nd_f[g, ND_GRATE] * dt


@_inline
def _free_thread(m: Model, s: State, st: int, leaf: int) -> None:
    """A thread of ``leaf`` is free: the next job in line takes it, else one job fewer runs."""
    nd_i, rq_i, rq_f = s.nd_i, s.rq_i, s.rq_f
    w = nd_i[leaf, ND_WAIT_HEAD]
    if w >= 0:
        nd_i[leaf, ND_WAIT_HEAD] = rq_i[w, RQ_NEXT]
        if rq_i[w, RQ_NEXT] < 0:
            nd_i[leaf, ND_WAIT_TAIL] = -1
        rq_f[w, RQ_TAG] = s.nd_f[leaf, ND_VTIME] + rq_f[w, RQ_TAG]
        _job_push(rq_i, rq_f, nd_i, leaf, w)
    else:
        _run(m.gi, m.gf, nd_i, s.st_i, st, leaf, -1)


@_inline
def _advance(m: Model, s: State, st: int, now: float) -> None:
    """Virtual clocks and quota use up to now; jobs done finish (in leaf order, then tag)."""
    si, gi, gf, q_nodes = m.si, m.gi, m.gf, m.q_nodes
    st_i, st_f, nd_i, nd_f, act, rq_i, rq_f = s.st_i, s.st_f, s.nd_i, s.nd_f, s.act, s.rq_i, s.rq_f
    dt = now - st_f[st, ST_SINCE]
    lo = si[st, S_ACT_LO]
    na = st_i[st, ST_ACT_N]
    qlo, qhi = si[st, S_QLO], si[st, S_QHI]
    streams = si[st, S_DOMAINS] != 0  # some leaves may be streams (their progress is not their rate)
    if dt > 0:
        _clocks(m, s, st, dt, streams)
    st_f[st, ST_SINCE] = now
    # As in the DES: late in a long run what is left within a few ticks of the clock counts as done.
    tick = 4 * (np.nextafter(max(now, 1.0), _INF) - max(now, 1.0))
    for q in range(qlo, qhi):
        g = q_nodes[q]
        if now >= nd_f[g, ND_PERIOD_END] - tick:
            period = gf[g, G_PERIOD]
            nd_f[g, ND_PERIOD_END] = (math.floor(now / period + 1e-9) + 1) * period
            nd_f[g, ND_USED] = 0.0
            nd_i[g, ND_THROTTLED] = 0
        if nd_f[g, ND_USED] >= gf[g, G_QUOTA] - max(_TOL, nd_f[g, ND_GRATE] * tick):
            nd_i[g, ND_THROTTLED] = 1
    kept = 0
    for i in range(na):
        leaf = act[lo + i]
        slack = max(_TOL, nd_f[leaf, ND_PROG] * tick)
        while nd_i[leaf, ND_HEAP_N] > 0 and rq_f[nd_i[leaf, ND_ROOT_JOB], RQ_TAG] - nd_f[leaf, ND_VTIME] <= slack:
            r = _job_pop(rq_i, rq_f, nd_i, s.pairs, leaf)
            _schedule(s.ctr, s.ev_t, s.ev_i, now, _NORMAL, _E_RESUME, r, 0)
            if rq_i[r, RQ_KEEP] == 1:  # the request's next stage takes this thread at once
                nd_i[leaf, ND_KEPT] += 1
                continue
            _count(gi, nd_i, nd_f, leaf, -1, now)
            _free_thread(m, s, st, leaf)
        if _own(nd_i, leaf) == 0 and nd_i[leaf, ND_WAIT_HEAD] < 0:
            nd_i[leaf, ND_LEAF] = 0  # idle leaves cost nothing in later allocations
        else:
            act[lo + kept] = leaf
            kept += 1
    st_i[st, ST_ACT_N] = kept


@_jit
def _sort_by_cap_per_weight(caps: np.ndarray, weights: np.ndarray, n: int, order: np.ndarray,
                            tmp: np.ndarray) -> None:
    """``order[:n]``: indices by cap per weight, ties in index order (Python's stable sort)."""
    for i in range(n):
        order[i] = i
    if n <= 16:  # insertion sort
        for i in range(1, n):
            v = order[i]
            key = caps[v] / weights[v]
            j = i
            while j > 0 and caps[order[j - 1]] / weights[order[j - 1]] > key:
                order[j] = order[j - 1]
                j -= 1
            order[j] = v
        return
    src, dst = order, tmp  # bottom-up merge sort, no allocation
    width = 1
    swapped = False
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if caps[src[j]] / weights[src[j]] < caps[src[i]] / weights[src[i]]:
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        swapped = not swapped
        width *= 2
    if swapped:  # the sorted run is in tmp
        for i in range(n):
            order[i] = src[i]


@_jit
def _water_fill(capacity: float, weights: np.ndarray, caps: np.ndarray, n: int, out: np.ndarray,
                order: np.ndarray, tmp: np.ndarray) -> None:
    """As :func:`virtsim.sim.stations.water_fill`, into ``out[:n]`` (``order``, ``tmp``: scratch >= n)."""
    for i in range(n):
        out[i] = 0.0
    if n == 0:
        return
    _sort_by_cap_per_weight(caps, weights, n, order, tmp)
    remaining_capacity = capacity
    remaining_weight = 0.0
    for i in range(n):
        remaining_weight += weights[i]
    for j in range(n):
        i = order[j]
        fair = remaining_capacity * weights[i] / remaining_weight
        out[i] = min(caps[i], fair)
        remaining_capacity -= out[i]
        remaining_weight -= weights[i]
        if remaining_weight <= 0:
            break


@_jit
def _weight(gi: np.ndarray, gf: np.ndarray, nd_i: np.ndarray, n: int) -> float:
    """The ``cpu.weight`` of node ``n``: its spec's, or the default 100; a leaf of streams, its
    jobs' as the parent's own jobs (as ``SharedStation._weight``)."""
    if gi[n, G_DOMAIN] >= 0:
        return _DEFAULT_WEIGHT * _own(nd_i, n)
    return gf[n, G_WEIGHT] if gi[n, G_SPEC] else _DEFAULT_WEIGHT


@_jit
def _share_children(m: Model, s: State, st: int, n: int, capacity: float, per_job: float) -> None:
    """Split the capacity given to node ``n`` among its children and its own jobs."""
    gi, gf, nd_i, nd_f = m.gi, m.gf, s.nd_i, s.nd_f
    if gi[n, G_SPEC]:
        nd_f[n, ND_GRATE] = capacity
    kids = s.scratch_i
    k = 0
    c = nd_i[n, ND_FIRST]
    while c >= 0:
        kids[k] = c
        k += 1
        c = nd_i[c, ND_NEXT]
    own = _own(nd_i, n) if nd_i[n, ND_LEAF] else 0
    nodes = gi.shape[0]
    weights = s.scratch_f[:nodes + 1]
    caps = s.scratch_f[nodes + 1:2 * nodes + 2]
    rates = s.scratch_f[2 * nodes + 2:3 * nodes + 3]
    pinned = False
    if gi[n, G_PARENT] < 0 and m.si[st, S_PINNED]:
        for i in range(k):
            if gi[kids[i], G_PINNED]:
                pinned = True
    n1 = nodes + 1
    for i in range(k):
        weights[i] = _weight(gi, gf, nd_i, kids[i])
        caps[i] = nd_f[kids[i], ND_CAP]
    size = k
    if own:  # the node's own jobs: one member, DEFAULT_WEIGHT and one server each
        weights[k] = _DEFAULT_WEIGHT * own
        caps[k] = own * per_job
        size = k + 1
    if pinned:
        _share_pinned(m, s, st, kids, k, own, capacity, weights, caps, size, rates)
    else:
        _water_fill(capacity, weights, caps, size, rates, s.scratch_i[2 * n1:3 * n1], s.scratch_i[3 * n1:4 * n1])
    for i in range(k):
        nd_f[kids[i], ND_CAP] = rates[i]  # the cap is no longer needed: it now holds the share
    if own:
        nd_f[n, ND_RATE] = nd_f[n, ND_PROG] = rates[k] / own


@_inline
def _core_classes(m: Model, s: State, st: int, kids: np.ndarray, k: int, own: int, cls: np.ndarray) -> int:
    """Each of the ``k`` children's core class into ``cls`` (and the node's own jobs, last, in
    class 0: every core), as :func:`virtsim.sim.stations._core_classes_of` numbers them: 0 for
    every core, then each new core set in the children's order; the classes' cores into
    ``s.scratch_m``. Returns the number of classes."""
    n_cores = int(m.sf[st, S_SERVERS])
    masks, cores, gi = s.scratch_m, m.cores, m.gi
    width = cores.shape[1]
    for c in range(n_cores):
        masks[0, c] = True
    n_cls = 1
    for i in range(k):
        kid = kids[i]
        found = 0
        if gi[kid, G_PINNED]:
            found = -1
            for j in range(n_cls):
                same = True
                for c in range(n_cores):
                    if masks[j, c] != (c < width and cores[kid, c]):
                        same = False
                        break
                if same:
                    found = j
                    break
            if found < 0:
                for c in range(n_cores):
                    masks[n_cls, c] = c < width and cores[kid, c]
                found = n_cls
                n_cls += 1
        cls[i] = found
    if own:
        cls[k] = 0
    return n_cls


@_jit
def _share_pinned(m: Model, s: State, st: int, kids: np.ndarray, k: int, own: int, capacity: float,
                  weights: np.ndarray, caps: np.ndarray, size: int, rates: np.ndarray) -> None:
    """As SharedStation._share_pinned: the weighted max-min fair shares of the ``size`` members
    (the children, then the node's own jobs) by ``weights`` and ``caps`` under their core sets
    (:func:`virtsim.sim.affinity.affinity_fill`), each core doing ``capacity / cores``.
    Allocation-free: scratch from State."""
    cls = s.scratch_p[0:m.gi.shape[0] + 1]
    n_cls = _core_classes(m, s, st, kids, k, own, cls)
    n_cores = int(m.sf[st, S_SERVERS])
    affinity_fill(weights, caps, cls, size, s.scratch_m, n_cls, n_cores, capacity / n_cores, rates, s.scratch_a,
                  s.scratch_b)


@_inline
def _mark_running(m: Model, s: State, st: int, marked: np.ndarray) -> int:
    """Mark every node on a path from a leaf with running jobs of ``st`` up to the root (into
    ``marked``), linking each node's children in order of first appearance, as the DES's dicts;
    the leaves' rates are reset. Returns how many nodes were marked (their marks cleared again)."""
    gi, nd_i, nd_f, act = m.gi, s.nd_i, s.nd_f, s.act
    lo = m.si[st, S_ACT_LO]
    nm = 0
    for i in range(s.st_i[st, ST_ACT_N]):
        leaf = act[lo + i]
        nd_f[leaf, ND_RATE] = nd_f[leaf, ND_PROG] = 0.0
        if _own(nd_i, leaf) == 0:
            continue
        child = -1
        n = leaf
        while n >= 0:
            newly = not nd_i[n, ND_MARK]
            if newly:
                nd_i[n, ND_MARK] = 1
                nd_i[n, ND_FIRST] = -1
                nd_i[n, ND_LAST] = -1
                marked[nm] = n
                nm += 1
            if child >= 0:
                _append(nd_i, n, ND_FIRST, ND_LAST, nd_i, ND_NEXT, child)
            if not newly:
                break
            child = n
            n = gi[n, G_PARENT]
    for i in range(nm):
        nd_i[marked[i], ND_MARK] = 0
    return nm


@_inline
def _caps_bottom_up(m: Model, s: State, marked: np.ndarray, nm: int, top: int, per_job: float) -> None:
    """Each marked node's cap: its own jobs at ``per_job`` each plus its children's caps, at most
    its servers (nothing while throttled), from the deepest level up."""
    gi, gf, nd_i, nd_f = m.gi, m.gf, s.nd_i, s.nd_f
    for d in range(top, -1, -1):
        for i in range(nm):
            n = marked[i]
            if gi[n, G_DEPTH] != d:
                continue
            cap = _own(nd_i, n) * per_job if nd_i[n, ND_LEAF] else 0.0
            c = nd_i[n, ND_FIRST]
            while c >= 0:
                cap += nd_f[c, ND_CAP]
                c = nd_i[c, ND_NEXT]
            if gi[n, G_SPEC] and gi[n, G_PARENT] >= 0:  # k servers: k hardware threads at per_job each
                cap = 0.0 if nd_i[n, ND_THROTTLED] else min(cap, gf[n, G_SERVERS] * per_job)
            nd_f[n, ND_CAP] = cap


@_jit
def _tree_caps(m: Model, s: State, st: int, per_job: float) -> tuple[int, int]:
    """Mark the groups holding running jobs (into ``scratch_i[nodes + 1:]``) and set their caps
    (:func:`_caps_bottom_up`); how many were marked and the deepest level."""
    gi = m.gi
    marked = s.scratch_i[gi.shape[0] + 1:2 * gi.shape[0] + 2]
    nm = _mark_running(m, s, st, marked)
    top = 0
    for i in range(nm):
        top = max(top, gi[marked[i], G_DEPTH])
    _caps_bottom_up(m, s, marked, nm, top, per_job)
    return nm, top


@_jit
def _allocate_tree(m: Model, s: State, st: int, capacity: float, per_job: float, only_count: bool = False) -> float:
    """Water-fill ``capacity`` down the tree of groups that hold running jobs. ``only_count``:
    share nothing, return how many jobs can run at once (the root's cap with ``per_job`` = 1)."""
    gi, nd_f = m.gi, s.nd_f
    marked = s.scratch_i[gi.shape[0] + 1:2 * gi.shape[0] + 2]
    nm, top = _tree_caps(m, s, st, per_job)
    root = m.si[st, S_ROOT]
    if only_count:
        return nd_f[root, ND_CAP] if nm > 0 else 0.0
    for q in range(m.si[st, S_QLO], m.si[st, S_QHI]):
        nd_f[m.q_nodes[q], ND_GRATE] = 0.0
    nd_f[root, ND_CAP] = capacity
    for d in range(top + 1):  # shares, top down: a node's cap field now holds what it was given
        for i in range(nm):
            n = marked[i]
            if gi[n, G_DEPTH] == d:
                _share_children(m, s, st, n, nd_f[n, ND_CAP], per_job)
    return capacity


@_inline
def _allocate(m: Model, s: State, st: int, now: float) -> None:
    """Set the rates of station ``st``'s leaves and quota groups, then its streams' progress."""
    if m.si[st, S_SLOTS]:
        _allocate_sliced(m, s, st, now)
    else:
        _allocate_rates(m, s, st)
    if m.si[st, S_DOMAINS]:
        _stream_progress(m, s, st)


@_jit
def _stream_progress(m: Model, s: State, st: int) -> None:
    """Each stream leaf's progress per job, as ``SharedStation._stream_progress``: its rate,
    times capacity over demand where its domain's streams ask for more than the domain holds."""
    gi, nd_i, nd_f, st_f, act = m.gi, s.nd_i, s.nd_f, s.st_f, s.act
    lo, na = m.si[st, S_ACT_LO], s.st_i[st, ST_ACT_N]
    for i in range(na):
        d = gi[act[lo + i], G_DOMAIN]
        if d >= 0:
            st_f[d, ST_DEMAND] = 0.0
    for i in range(na):
        leaf = act[lo + i]
        d = gi[leaf, G_DOMAIN]
        if d >= 0:
            st_f[d, ST_DEMAND] += nd_f[leaf, ND_RATE] * _own(nd_i, leaf)
    for i in range(na):
        leaf = act[lo + i]
        d = gi[leaf, G_DOMAIN]
        if d >= 0:
            asked, capacity = st_f[d, ST_DEMAND], m.sf[d, S_SERVERS]
            rate = nd_f[leaf, ND_RATE]
            nd_f[leaf, ND_PROG] = rate * (capacity / asked) if asked > capacity else rate


# -- time slices (sim.slices.Slicer, step for step) -------------------------------------------


@_jit
def _sl_eligible(m: Model, st: int, node: int, slot: int) -> bool:
    """Whether top-level group ``node`` may run on slot ``slot`` (a bound group: its cores' slots)."""
    if not m.gi[node, G_PINNED]:
        return True
    c = slot % int(m.sf[st, S_SERVERS])
    return c < m.cores.shape[1] and m.cores[node, c]


@_jit
def _sl_siblings(m: Model, s: State, st: int, slot: int) -> int:
    """How many slots of ``slot``'s core are taken (its busy hardware threads)."""
    lo, slots, cores = m.si[st, S_SL_LO], m.si[st, S_SLOTS], int(m.sf[st, S_SERVERS])
    k = 0
    for sib in range(slot % cores, slots, cores):
        if s.sl_i[lo + sib, SL_OCC] >= 0:
            k += 1
    return k


@_jit
def _sl_start(m: Model, s: State, st: int, g: int, slot: int, now: float) -> None:
    """Group ``g`` takes ``slot`` for a new slice (``SliceSpec.slice_s`` for the runnable threads)."""
    lo = m.si[st, S_SL_LO]
    if _sl_siblings(m, s, st, slot) == 1:  # its core now has two busy threads (ST_SHARED: such cores)
        s.st_i[st, ST_SHARED] += 1
    s.sl_i[lo + slot, SL_OCC] = g
    s.nd_i[g, ND_HOLD] += 1
    slots = m.si[st, S_SLOTS]
    slice_s = max(m.sf[st, S_LATENCY] * slots / max(s.st_i[st, ST_WANT], 1), m.sf[st, S_MIN_SLICE])
    s.sl_f[lo + slot, SL_END] = now + slice_s
    s.sl_f[lo + slot, SL_START] = now


@_jit
def _sl_free(m: Model, s: State, st: int, slot: int) -> None:
    """Its group gives ``slot`` up."""
    lo = m.si[st, S_SL_LO]
    s.nd_i[s.sl_i[lo + slot, SL_OCC], ND_HOLD] -= 1
    s.sl_i[lo + slot, SL_OCC] = -1
    if _sl_siblings(m, s, st, slot) == 1:
        s.st_i[st, ST_SHARED] -= 1
    s.sl_f[lo + slot, SL_END] = _INF


@_jit
def _sl_waiting_for(m: Model, s: State, st: int, slot: int) -> int:
    """The waiting group (fewer slots than threads) with the least virtual runtime that may run
    on ``slot``, the first in order of name of equals; -1 if none."""
    best = -1
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        if s.nd_i[g, ND_HOLD] < s.nd_i[g, ND_WANT] and _sl_eligible(m, st, g, slot) and \
                (best < 0 or s.nd_f[g, ND_SV] < s.nd_f[best, ND_SV]):
            best = g
    return best


@_jit
def _sl_any_waiting(m: Model, s: State, st: int) -> bool:
    """Whether some top-level group has fewer slots than runnable threads (else no turn is due:
    the common case of a host not over-committed, kept to one pass over the groups)."""
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        if s.nd_i[g, ND_HOLD] < s.nd_i[g, ND_WANT]:
            return True
    return False


@_jit
def _sl_fill(m: Model, s: State, st: int, slot: int, now: float) -> None:
    """Give a free slot to the waiting group furthest behind that may run there."""
    g = _sl_waiting_for(m, s, st, slot)
    if g >= 0:
        _sl_start(m, s, st, g, slot, now)


@_jit
def _sl_raise_floors(m: Model, s: State, st: int) -> None:
    """Each core's min_vruntime: the least virtual runtime of the runnable groups that may run
    there, never moving back (Slicer._raise_floors)."""
    lo = m.si[st, S_SL_LO]
    everywhere = not m.si[st, S_PINNED]  # every group may run on every core: one least runtime for all
    least = _INF
    for c in range(int(m.sf[st, S_SERVERS])):
        if not everywhere or c == 0:
            least = _INF
            for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
                g = m.top[t]
                if s.nd_i[g, ND_WANT] > 0 and s.nd_f[g, ND_SV] > -_INF and _sl_eligible(m, st, g, c):
                    least = min(least, s.nd_f[g, ND_SV])
        if least < _INF:
            s.sl_f[lo + c, SL_MIN_V] = max(s.sl_f[lo + c, SL_MIN_V], least)


@_jit
def _sl_floor(m: Model, s: State, st: int, g: int) -> float:
    """The least min_vruntime of the cores group ``g`` may run on."""
    lo = m.si[st, S_SL_LO]
    floor = _INF
    for c in range(int(m.sf[st, S_SERVERS])):
        if _sl_eligible(m, st, g, c):
            floor = min(floor, s.sl_f[lo + c, SL_MIN_V])
    return floor


@_jit
def _sl_take(m: Model, s: State, st: int, g: int, now: float, woken: bool) -> bool:
    """One more slot for ``g``: a free one it may use, else, if its threads just woke, the slot
    it last gave up (else the slot of the group furthest ahead) if its occupant is more than the
    wake-up granularity ahead and has run its minimum (Slicer._take)."""
    lo, slots = m.si[st, S_SL_LO], m.si[st, S_SLOTS]
    free = -1
    for slot in range(slots):  # a slot on a core with nothing running first (select_idle_core)
        if s.sl_i[lo + slot, SL_OCC] < 0 and _sl_eligible(m, st, g, slot):
            if _sl_siblings(m, s, st, slot) == 0:
                _sl_start(m, s, st, g, slot, now)
                return True
            if free < 0:
                free = slot
    if free >= 0:
        _sl_start(m, s, st, g, free, now)
        return True
    if not woken or m.sf[st, S_WAKEUP] < 0:
        return False
    victim = -1
    ahead = -1
    home = s.nd_i[g, ND_HOME] - 1  # its previous slot, the only one it may preempt (Slicer._take)
    first, last = 0, slots
    if home >= 0 and _sl_eligible(m, st, g, home):
        first, last = home, home + 1
    for slot in range(first, last):  # the last of equals
        if _sl_eligible(m, st, g, slot):
            o = s.sl_i[lo + slot, SL_OCC]
            if o >= 0 and (victim < 0 or s.nd_f[o, ND_SV] >= s.nd_f[ahead, ND_SV]):
                victim, ahead = slot, o
    if ahead >= 0 and ahead != g and s.nd_f[ahead, ND_SV] - s.nd_f[g, ND_SV] > m.sf[st, S_WAKEUP]:
        earliest = s.sl_f[lo + victim, SL_START] + m.sf[st, S_MIN_RUN]
        if now < earliest:  # rate-limited: the victim's slice ends when it has run its minimum
            s.sl_f[lo + victim, SL_END] = min(s.sl_f[lo + victim, SL_END], earliest)
            return False
        _sl_free(m, s, st, victim)
        _sl_start(m, s, st, g, victim, now)
        return True
    return False


@_jit
def _sl_woken(m: Model, s: State, st: int, now: float) -> None:
    """Mark the groups whose runnable threads rise (``ND_WOKEN``) and place those that slept
    against their cores' floors (Slicer._woken)."""
    placing = False
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        n, before = s.nd_i[g, ND_ASK], s.nd_i[g, ND_WANT]
        # blocked and runnable again at the same instant: it did not sleep
        woken = n > before and not (before == 0 and s.nd_f[g, ND_SLEPT] == now)
        s.nd_i[g, ND_WOKEN] = 1 if woken else 0
        placing = placing or (woken and before == 0)
    if not placing:
        return
    _sl_raise_floors(m, s, st)
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        if s.nd_i[g, ND_WOKEN] and s.nd_i[g, ND_WANT] == 0:
            s.nd_f[g, ND_SV] = max(s.nd_f[g, ND_SV], _sl_floor(m, s, st, g) - m.sf[st, S_CREDIT])


@_jit
def _sl_demand(m: Model, s: State, st: int, now: float) -> None:
    """Each top-level group's runnable threads made ``ND_ASK`` (Slicer.demand): a group waking
    from sleep placed as a sleeper; surpluses given up (_sl_surplus), then threads
    waiting take free slots, or preempt if they just woke; groups in order of name."""
    lo = m.si[st, S_SL_LO]
    _sl_woken(m, s, st, now)
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        n, before = s.nd_i[g, ND_ASK], s.nd_i[g, ND_WANT]
        if before > 0 and n == 0:
            s.nd_f[g, ND_SLEPT] = now
        s.st_i[st, ST_WANT] += n - before
        s.nd_i[g, ND_WANT] = n
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        for _ in range(s.nd_i[g, ND_HOLD] - s.nd_i[g, ND_WANT]):
            top_slot = _sl_surplus(m, s, st, g)
            s.sl_f[lo + top_slot, SL_REL_T], s.sl_i[lo + top_slot, SL_REL_G] = now, g
            s.sl_f[lo + top_slot, SL_REL_END] = s.sl_f[lo + top_slot, SL_END]
            s.sl_f[lo + top_slot, SL_REL_START] = s.sl_f[lo + top_slot, SL_START]
            s.nd_i[g, ND_HOME] = top_slot + 1
            _sl_free(m, s, st, top_slot)
            _sl_fill(m, s, st, top_slot, now)
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        for _ in range(s.nd_i[g, ND_WANT] - s.nd_i[g, ND_HOLD]):
            if not (_sl_reclaim(m, s, st, g, now) or _sl_take(m, s, st, g, now, s.nd_i[g, ND_WOKEN] == 1)):
                break
    _sl_settle(m, s, st, now)


@_jit
def _sl_surplus(m: Model, s: State, st: int, g: int) -> int:
    """The slot ``g`` gives up: its highest that a waiting group may run on, else its highest
    (Slicer._surplus)."""
    lo = m.si[st, S_SL_LO]
    top_slot = -1
    for slot in range(m.si[st, S_SLOTS]):
        if s.sl_i[lo + slot, SL_OCC] == g:
            top_slot = slot
    if s.nd_i[g, ND_HOLD] == 1:  # no choice: no pass over the groups (a density host has a thousand)
        return top_slot
    wanted_slot = -1
    for slot in range(m.si[st, S_SLOTS]):
        if s.sl_i[lo + slot, SL_OCC] == g and _sl_waiting_for(m, s, st, slot) >= 0:
            wanted_slot = slot
    return wanted_slot if wanted_slot >= 0 else top_slot


@_jit
def _sl_reclaim(m: Model, s: State, st: int, g: int, now: float) -> bool:
    """Take back a slot ``g`` gave up at this same instant, its slice as it was (Slicer._reclaim)."""
    lo = m.si[st, S_SL_LO]
    for slot in range(m.si[st, S_SLOTS]):
        if s.sl_i[lo + slot, SL_REL_G] == g and s.sl_f[lo + slot, SL_REL_T] == now:
            s.sl_i[lo + slot, SL_REL_G] = -1
            if s.sl_i[lo + slot, SL_OCC] >= 0:
                _sl_free(m, s, st, slot)
            _sl_start(m, s, st, g, slot, now)
            s.sl_f[lo + slot, SL_END] = s.sl_f[lo + slot, SL_REL_END]
            s.sl_f[lo + slot, SL_START] = s.sl_f[lo + slot, SL_REL_START]
            return True
    return False


@_jit
def _sl_settle(m: Model, s: State, st: int, now: float) -> None:
    """No slot idle while a group that may use it waits; no two threads on a core while a core
    one of them may use is idle (Slicer._settle)."""
    lo, slots, cores = m.si[st, S_SL_LO], m.si[st, S_SLOTS], int(m.sf[st, S_SERVERS])
    if _sl_any_waiting(m, s, st):
        for slot in range(slots):
            if s.sl_i[lo + slot, SL_OCC] < 0:
                _sl_fill(m, s, st, slot, now)
    if s.st_i[st, ST_SHARED] == 0:
        return
    for slot in range(slots - 1, -1, -1):  # a thread sharing a core moves to an idle one it may use
        g = s.sl_i[lo + slot, SL_OCC]
        if g < 0 or _sl_siblings(m, s, st, slot) < 2:
            continue
        for c in range(cores):
            if _sl_eligible(m, st, g, c) and _sl_siblings(m, s, st, c) == 0:
                end, start = s.sl_f[lo + slot, SL_END], s.sl_f[lo + slot, SL_START]
                _sl_free(m, s, st, slot)
                _sl_start(m, s, st, g, c, now)
                s.sl_f[lo + c, SL_END], s.sl_f[lo + c, SL_START] = end, start
                break


@_jit
def _sl_rotate(m: Model, s: State, st: int, now: float, tick: float) -> None:
    """Slots whose slice has ended go to the waiting group furthest behind that may run there."""
    if not _sl_any_waiting(m, s, st):
        return
    lo = m.si[st, S_SL_LO]
    for slot in range(m.si[st, S_SLOTS]):
        ended = s.sl_i[lo + slot, SL_OCC] >= 0 and s.sl_f[lo + slot, SL_END] <= now + tick
        if ended and _sl_waiting_for(m, s, st, slot) >= 0:
            _sl_free(m, s, st, slot)
            _sl_fill(m, s, st, slot, now)
    _sl_settle(m, s, st, now)


@_jit
def _sl_next_end(m: Model, s: State, st: int) -> float:
    """When the next slice ends that a waiting group may take (``inf`` if none waits)."""
    lo = m.si[st, S_SL_LO]
    end = _INF
    if not _sl_any_waiting(m, s, st):
        return end
    for slot in range(m.si[st, S_SLOTS]):
        if s.sl_i[lo + slot, SL_OCC] >= 0 and s.sl_f[lo + slot, SL_END] < end and _sl_waiting_for(m, s, st, slot) >= 0:
            end = s.sl_f[lo + slot, SL_END]
    return end


@_jit
def _sl_advance(m: Model, s: State, st: int, dt: float) -> None:
    """Each group's virtual runtime ``dt`` seconds on: its slots' time over its weight."""
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        if s.nd_i[g, ND_HOLD]:
            s.nd_f[g, ND_SV] += dt * _DEFAULT_WEIGHT * s.nd_i[g, ND_HOLD] / s.nd_f[g, ND_SW]


@_jit
def _allocate_sliced(m: Model, s: State, st: int, now: float) -> None:
    """As SharedStation._allocate_sliced: the groups' caps (a job a server), each top-level group
    asking for as many threads as they allow (at most the slots), the slicer's turns, then each
    group's running threads water-filled down its subtree; the station's own jobs share its own.
    Uncontended, a group asks for its running jobs, and if each holds a core apiece every job
    runs at a whole core, without the tree."""
    throttled = False
    for q in range(m.si[st, S_QLO], m.si[st, S_QHI]):
        if s.nd_i[m.q_nodes[q], ND_THROTTLED]:
            throttled = True
    uncontended = s.st_i[st, ST_OVER] == 0 and not m.si[st, S_PINNED] and not throttled
    nm, top = _sl_asks(m, s, st, uncontended)
    _sl_demand(m, s, st, now)
    _sl_rotate(m, s, st, now, 4 * (np.nextafter(max(now, 1.0), _INF) - max(now, 1.0)))
    _sl_held(m, s, st)
    if uncontended:
        if _sl_alone(m, s, st):
            return
        nm, top = _tree_caps(m, s, st, 1.0)
    _sl_share(m, s, st, nm, top)


@_jit
def _sl_asks(m: Model, s: State, st: int, uncontended: bool) -> tuple[int, int]:
    """Each top-level group's threads asked for (``ND_ASK``) and weight (SharedStation._slice_asks);
    with caps (the tree marked: how many nodes and the deepest level) unless ``uncontended``."""
    gi, nd_i, nd_f = m.gi, s.nd_i, s.nd_f
    root, slots = m.si[st, S_ROOT], m.si[st, S_SLOTS]
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        nd_i[m.top[t], ND_ASK] = 0
    nm, top = 0, 0
    if uncontended:
        for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
            c = m.top[t]
            if c != root and nd_i[c, ND_RUNNING] > 0:
                nd_i[c, ND_ASK] = min(nd_i[c, ND_RUNNING], slots)
                nd_f[c, ND_SW] = _weight(gi, m.gf, nd_i, c)
    else:
        nm, top = _tree_caps(m, s, st, 1.0)
        c = nd_i[root, ND_FIRST] if nm > 0 else -1
        while c >= 0:
            nd_i[c, ND_ASK] = min(math.ceil(nd_f[c, ND_CAP] - 1e-9), slots)
            if nd_i[c, ND_ASK] > 0:  # a group asking for none keeps its weight (Slicer.demand)
                nd_f[c, ND_SW] = _weight(gi, m.gf, nd_i, c)
            c = nd_i[c, ND_NEXT]
    own = _own(nd_i, root) if nd_i[root, ND_LEAF] else 0
    if own:
        nd_i[root, ND_ASK] = min(own, slots)
        nd_f[root, ND_SW] = _DEFAULT_WEIGHT * own
    return nm, top


@_jit
def _sl_held(m: Model, s: State, st: int) -> None:
    """The cores' worth each top-level group holds (``ND_HELD``, Slicer.held): a core per slot
    unless some core runs two threads, then each slot its share of its core's yield."""
    lo, slots = m.si[st, S_SL_LO], m.si[st, S_SLOTS]
    shared = s.st_i[st, ST_SHARED] > 0
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        s.nd_f[g, ND_HELD] = 0.0 if shared else float(s.nd_i[g, ND_HOLD])
    if shared:
        for slot in range(slots):
            g = s.sl_i[lo + slot, SL_OCC]
            if g >= 0:
                k = _sl_siblings(m, s, st, slot)
                s.nd_f[g, ND_HELD] += (1.0 + m.sf[st, S_SMT] * (k - 1)) / k


@_jit
def _sl_alone(m: Model, s: State, st: int) -> bool:
    """If every group holds a whole core per thread it asked for, every running job runs at a
    whole core: set the rates (and the quota groups' use) and say so; else change nothing."""
    nd_i, nd_f = s.nd_i, s.nd_f
    for t in range(m.si[st, S_TOP_LO], m.si[st, S_TOP_HI]):
        g = m.top[t]
        if nd_i[g, ND_ASK] > 0 and nd_f[g, ND_HELD] != nd_i[g, ND_ASK]:
            return False
    lo = m.si[st, S_ACT_LO]
    for i in range(s.st_i[st, ST_ACT_N]):
        leaf = s.act[lo + i]
        nd_f[leaf, ND_RATE] = nd_f[leaf, ND_PROG] = 1.0 if _own(nd_i, leaf) else 0.0
    for q in range(m.si[st, S_QLO], m.si[st, S_QHI]):
        g = m.q_nodes[q]
        nd_f[g, ND_GRATE] = float(nd_i[g, ND_RUNNING])
    return True


@_jit
def _sl_share(m: Model, s: State, st: int, nm: int, top: int) -> None:
    """Each top-level group's held cores shared down its subtree (the tree marked: ``nm`` nodes,
    deepest level ``top``); a quota group charged its group's slots' run time (SharedStation._share_slices)."""
    gi, nd_i, nd_f = m.gi, s.nd_i, s.nd_f
    marked = s.scratch_i[gi.shape[0] + 1:2 * gi.shape[0] + 2]
    root = m.si[st, S_ROOT]
    for q in range(m.si[st, S_QLO], m.si[st, S_QHI]):
        nd_f[m.q_nodes[q], ND_GRATE] = 0.0
    if nm == 0:
        return
    c = nd_i[root, ND_FIRST]
    while c >= 0:
        nd_f[c, ND_CAP] = min(nd_f[c, ND_HELD], nd_f[c, ND_CAP])
        c = nd_i[c, ND_NEXT]
    own = _own(nd_i, root) if nd_i[root, ND_LEAF] else 0
    if own:
        nd_f[root, ND_RATE] = nd_f[root, ND_PROG] = nd_f[root, ND_HELD] / own
    for d in range(1, top + 1):
        for i in range(nm):
            n = marked[i]
            if gi[n, G_DEPTH] == d:
                _share_children(m, s, st, n, nd_f[n, ND_CAP], 1.0)
    for q in range(m.si[st, S_QLO], m.si[st, S_QHI]):
        g = m.q_nodes[q]
        t = g
        while gi[t, G_DEPTH] > 1:
            t = gi[t, G_PARENT]
        if nd_f[t, ND_HELD] > 0:
            nd_f[g, ND_GRATE] *= nd_i[t, ND_HOLD] / nd_f[t, ND_HELD]


@_inline
def _allocate_rates(m: Model, s: State, st: int) -> None:
    """Set the rates of station ``st``'s leaves and quota groups, skipping the water-filling when uncontended."""
    si, sf, nd_i, nd_f = m.si, m.sf, s.nd_i, s.nd_f
    cores = sf[st, S_SERVERS]
    n = float(nd_i[si[st, S_ROOT], ND_RUNNING])
    tps = si[st, S_TPS]
    if tps > 1 and n > cores:
        # only jobs that can hold a hardware thread (group caps, throttling) make siblings busy;
        # with no group over its cap and none throttled, every running job can
        held = s.st_i[st, ST_OVER] > 0
        for q in range(si[st, S_QLO], si[st, S_QHI]):
            if nd_i[m.q_nodes[q], ND_THROTTLED]:
                held = True
        if held:
            n = _allocate_tree(m, s, st, cores, 1.0, True)
    if tps > 1 and n > cores:
        n = min(n, cores * tps)
        capacity = cores + sf[st, S_SMT] * (n - cores)
        per_job = capacity / n
        _allocate_tree(m, s, st, capacity, per_job)
        for q in range(si[st, S_QLO], si[st, S_QHI]):  # a hardware thread's run time is charged, not its work
            nd_f[m.q_nodes[q], ND_GRATE] /= per_job
        return
    qlo, qhi = si[st, S_QLO], si[st, S_QHI]
    throttled = False
    for q in range(qlo, qhi):
        if nd_i[m.q_nodes[q], ND_THROTTLED]:
            throttled = True
    if s.st_i[st, ST_OVER] == 0 and not si[st, S_PINNED] and not throttled:
        # Uncontended: every running job has a server of its own (the water-filling's answer).
        lo = si[st, S_ACT_LO]
        for i in range(s.st_i[st, ST_ACT_N]):
            leaf = s.act[lo + i]
            nd_f[leaf, ND_RATE] = nd_f[leaf, ND_PROG] = 1.0 if _own(nd_i, leaf) else 0.0
        for q in range(qlo, qhi):
            g = m.q_nodes[q]
            nd_f[g, ND_GRATE] = float(nd_i[g, ND_RUNNING])
        return
    _allocate_tree(m, s, st, cores, 1.0)


@_inline
def _reschedule(m: Model, s: State, st: int, now: float) -> None:
    """New rates, and a wake-up at the next completion or quota event (older ones go stale)."""
    _allocate(m, s, st, now)
    nd_i, nd_f, rq_f = s.nd_i, s.nd_f, s.rq_f
    delay = _INF
    lo = m.si[st, S_ACT_LO]
    for i in range(s.st_i[st, ST_ACT_N]):
        leaf = s.act[lo + i]
        if nd_f[leaf, ND_RATE] > 0 and nd_i[leaf, ND_HEAP_N] > 0:
            delay = min(delay, (rq_f[nd_i[leaf, ND_ROOT_JOB], RQ_TAG] - nd_f[leaf, ND_VTIME]) / nd_f[leaf, ND_PROG])
    for q in range(m.si[st, S_QLO], m.si[st, S_QHI]):
        g = m.q_nodes[q]
        if nd_f[g, ND_GRATE] > 0:
            delay = min(delay, (m.gf[g, G_QUOTA] - nd_f[g, ND_USED]) / nd_f[g, ND_GRATE], nd_f[g, ND_PERIOD_END] - now)
        elif nd_i[g, ND_THROTTLED]:
            delay = min(delay, nd_f[g, ND_PERIOD_END] - now)
    if m.si[st, S_SLOTS]:
        delay = min(delay, _sl_next_end(m, s, st) - now)
    if delay < _INF:  # the DES schedules a timer here; an earlier one of this station goes stale
        s.st_f[st, ST_WAKE_T] = now + max(delay, 0.0)
        s.st_i[st, ST_WAKE_KEY] = _next_key(s.ctr, _NORMAL)
    else:
        s.st_f[st, ST_WAKE_T] = _INF


@_inline
def _ps_submit(m: Model, s: State, st: int, node: int, r: int, work: float, now: float, keep: int) -> None:
    """Add request ``r`` with ``work`` seconds of service to group ``node`` of shared station ``st``;
    ``keep``: its thread stays the request's for its next stage (SharedStation.submit), which
    takes it at once, the request's RQ_KEEP saying so."""
    _advance(m, s, st, now)
    nd_i, rq_i, rq_f = s.nd_i, s.rq_i, s.rq_f
    _leaf(m.si, nd_i, s.nd_f, s.st_i, s.act, st, node)
    s.st_i[st, ST_SEQ] += 1
    rq_i[r, RQ_SEQ] = s.st_i[st, ST_SEQ]
    threads = m.gi[node, G_THREADS]
    kept = rq_i[r, RQ_KEEP] == 1 and threads > 0
    rq_i[r, RQ_KEEP] = keep if threads > 0 else 0
    if kept:  # the request's thread runs on: already counted as a job, and running
        nd_i[node, ND_KEPT] -= 1
        rq_f[r, RQ_TAG] = s.nd_f[node, ND_VTIME] + work
        _job_push(rq_i, rq_f, nd_i, node, r)
    else:
        _count(m.gi, nd_i, s.nd_f, node, 1, now)
        if threads == 0 or nd_i[node, ND_HEAP_N] + nd_i[node, ND_KEPT] < threads:
            rq_f[r, RQ_TAG] = s.nd_f[node, ND_VTIME] + work
            _job_push(rq_i, rq_f, nd_i, node, r)
            _run(m.gi, m.gf, nd_i, s.st_i, st, node, 1)
        else:  # every thread busy: wait in line, holding the work until a thread takes it
            rq_f[r, RQ_TAG] = work
            _append(nd_i, node, ND_WAIT_HEAD, ND_WAIT_TAIL, rq_i, RQ_NEXT, r)
    _reschedule(m, s, st, now)  # one call: each inlined copy of the allocation is compiled again


# -- requests ---------------------------------------------------------------------------------


@_inline
def _new_request(s: State, sm: int, now: float) -> int:
    """Start a request of stream ``sm`` arriving at ``now`` (s), on the stream's next work row; returns its index."""
    r = s.ctr[C_REQ_N]
    s.ctr[C_REQ_N] = r + 1
    s.ctr[C_INFLIGHT] += 1
    s.rq_i[r, RQ_STREAM] = sm
    s.rq_i[r, RQ_ROW] = s.sm_i[sm, SM_ROW]
    s.rq_i[r, RQ_STEP] = 0
    s.rq_i[r, RQ_KEEP] = 0
    s.rq_f[r, RQ_ARRIVAL] = now
    s.sm_i[sm, SM_ROW] += 1
    s.sm_i[sm, SM_J] += 1
    return r


@_inline
def _next_gap(m: Model, s: State, sm: int) -> float:
    """Stream ``sm``'s next arrival gap or think time (s)."""
    gap = s.gaps[s.sm_i[sm, SM_GAP]] * m.kf[sm, K_SCALE]
    s.sm_i[sm, SM_GAP] += 1
    return gap


@_inline
def _next_arrival(m: Model, s: State, sm: int, now: float) -> None:
    """Schedule open stream ``sm``'s next arrival, one gap from ``now``, in its current schedule."""
    t = now + _next_gap(m, s, sm)
    m.kf[sm, K_NEXT] = t
    _schedule(s.ctr, s.ev_t, s.ev_i, t, _NORMAL, _E_ARRIVE, sm, s.sm_i[sm, SM_EPOCH])


@_inline
def _client_next(m: Model, s: State, sm: int, now: float) -> int:
    """A closed-loop client's next request: after its think time (-1), or at once (the request);
    nothing if it was paused (it goes idle until set_paused takes it up again)."""
    if s.sm_i[sm, SM_PAUSE]:
        s.sm_i[sm, SM_IDLE] = 1
        return -1
    if m.kf[sm, K_THINK] > 0:
        _schedule(s.ctr, s.ev_t, s.ev_i, now + _next_gap(m, s, sm), _NORMAL, _E_ARRIVE, sm, 0)
        return -1
    if now >= m.end_s:
        return -1
    # A request with no work finishes at once and its client goes on in the same event, so one
    # event can make many requests: when there is no room for the next, the loop stops here and
    # takes this client up again first thing on the next call.
    if s.sm_i[sm, SM_ROW] >= s.sm_i[sm, SM_ROW_END] or s.ctr[C_REQ_N] >= s.rq_i.shape[0]:
        s.ctr[C_PENDING] = sm + 1
        return -1
    return _new_request(s, sm, now)


@_inline
def _keeps_thread(m: Model, s: State, sm: int, row: int, k: int) -> int:
    """1 if slot ``k`` submits to a group of threads and the request's next slot with work is a
    submit to the same station and group: one pass of its thread (engine._keeps_thread)."""
    steps = m.steps
    if m.gi[steps[sm, k, P_NODE], G_THREADS] == 0:
        return 0
    for j in range(k + 1, m.ki[sm, K_LEN]):
        if s.work[row, j] > 0.0:
            same = (steps[sm, j, P_WHAT] == SUBMIT and steps[sm, j, P_STATION] == steps[sm, k, P_STATION]
                    and steps[sm, j, P_NODE] == steps[sm, k, P_NODE])
            return 1 if same else 0
    return 0


@_inline
def _ps_unkeep(m: Model, s: State, st: int, node: int, r: int, now: float) -> None:
    """Request ``r`` gives up the thread of ``node`` it kept (SharedStation.unkeep): the next job
    in line takes it, as when a job finishes."""
    _advance(m, s, st, now)
    nd_i = s.nd_i
    s.rq_i[r, RQ_KEEP] = 0
    nd_i[node, ND_KEPT] -= 1
    _count(m.gi, nd_i, s.nd_f, node, -1, now)
    _free_thread(m, s, st, node)
    _reschedule(m, s, st, now)


@_inline
def _serve(m: Model, s: State, r: int, first: int, now: float) -> int:
    """Take request ``r`` from slot ``first`` until it waits (-1) or is done (then its client's next
    request when that follows at once, else -1)."""
    si, st_i, st_f, rq_i = m.si, s.st_i, s.st_f, s.rq_i
    sm = rq_i[r, RQ_STREAM]
    row = rq_i[r, RQ_ROW]
    steps = m.steps
    for k in range(first, m.ki[sm, K_LEN]):
        w = s.work[row, k]
        if not w > 0.0:  # as the DES: zero (or NaN) work skips the slot
            continue
        cst = steps[sm, k, P_COND_STATION]
        if cst >= 0 and _idle_for(si, st_i, st_f, s.nd_i, s.nd_f, cst, steps[sm, k, P_COND_NODE], now) \
                < m.cond_min[sm, k]:
            if rq_i[r, RQ_KEEP] == 1 and not _keeps_thread(m, s, sm, row, k):  # nor a later stage of the pass
                _ps_unkeep(m, s, steps[sm, k, P_STATION], steps[sm, k, P_NODE], r, now)
            continue
        st = steps[sm, k, P_STATION]
        s.rq_f[r, RQ_T0] = now
        rq_i[r, RQ_STEP] = k
        what = steps[sm, k, P_WHAT]
        kind = si[st, S_KIND]
        if what == SUBMIT:
            if kind == SHARED:
                _ps_submit(m, s, st, steps[sm, k, P_NODE], r, w, now, _keeps_thread(m, s, sm, row, k))
            elif kind == DELAY:
                st_f[st, ST_WORK] += w
                _schedule(s.ctr, s.ev_t, s.ev_i, now + w, _NORMAL, _E_RESUME, r, 0)
            else:
                _note_busy(st_i, st_f, st, 1, now)
                if st_i[st, ST_BUSY] < m.sf[st, S_SERVERS]:
                    st_i[st, ST_BUSY] += 1
                    st_f[st, ST_WORK] += min(w, m.end_s - now)  # only what is served before the end
                    _schedule(s.ctr, s.ev_t, s.ev_i, now + w, _NORMAL, _E_FIFO, st, r)
                else:
                    _enqueue(st_i, rq_i, st, r)
            return -1
        if what == ACQUIRE:
            _note_busy(st_i, st_f, st, 1, now)
            if st_i[st, ST_BUSY] < m.sf[st, S_SERVERS]:
                _lock_account(st_i, st_f, st, now)
                st_i[st, ST_BUSY] += 1
                _schedule(s.ctr, s.ev_t, s.ev_i, now, _NORMAL, _E_RESUME, r, 0)
            else:
                _enqueue(st_i, rq_i, st, r)
            return -1
        _note_busy(st_i, st_f, st, -1, now)  # release: the first waiter, if any, takes the token
        if st_i[st, ST_Q_HEAD] >= 0:
            _schedule(s.ctr, s.ev_t, s.ev_i, now, _NORMAL, _E_RESUME, _dequeue(st_i, rq_i, st), 0)
        else:
            _lock_account(st_i, st_f, st, now)
            st_i[st, ST_BUSY] -= 1
        s.rq_stage[r, k] = 0.0
    s.rq_f[r, RQ_FINISH] = now
    s.ctr[C_INFLIGHT] -= 1
    return _client_next(m, s, sm, now) if m.ki[sm, K_KIND] == CLOSED else -1


# -- the loop ---------------------------------------------------------------------------------


@_inline
def _room(m: Model, s: State, wake: int) -> int:
    """What the next event (the queue's first, or station ``wake``'s wake-up) needs that is
    missing (DONE: nothing). Checked before it is taken."""
    ki = m.ki
    need = 2 * s.ctr[C_INFLIGHT] + 2 * ki.shape[0] + 4 * m.si.shape[0] + 16
    kind = _E_WAKE if wake >= 0 else s.ev_i[0, EV_KIND]
    sm = -1
    count = 1
    if kind in (_E_INIT, _E_ARRIVE):
        sm = s.ev_i[0, EV_A]
        if ki[sm, K_KIND] == BATCH:
            count = ki[sm, K_COUNT]
            need += count
    elif kind in (_E_RESUME, _E_SERVE):
        sm = s.rq_i[s.ev_i[0, EV_A], RQ_STREAM]
        if ki[sm, K_KIND] != CLOSED:
            sm = -1
    if s.ctr[C_HEAP_N] + need > s.ev_t.shape[0]:
        return NEED_HEAP
    if s.ctr[C_REQ_N] + count > s.rq_i.shape[0]:
        return NEED_REQUESTS
    if sm >= 0:
        if s.sm_i[sm, SM_ROW] + count > s.sm_i[sm, SM_ROW_END]:
            s.ctr[C_NEED_STREAM] = sm
            return NEED_WORK
        kind = ki[sm, K_KIND]
        gaps = kind == OPEN or (kind == CLOSED and m.kf[sm, K_THINK] > 0)
        if gaps and s.sm_i[sm, SM_GAP] >= s.sm_i[sm, SM_GAP_END]:
            s.ctr[C_NEED_STREAM] = sm
            return NEED_GAPS
    return DONE


@_inline
def _arrive(m: Model, s: State, sm: int, epoch: int, now: float) -> int:
    """A stream's timeout fired: an arrival, a batch, or a client done thinking (its request, which
    the caller serves at once; -1 otherwise). An open stream's arrival from a schedule that
    set_rate has since replaced (``epoch``) is void."""
    kind = m.ki[sm, K_KIND]
    if kind == CLOSED:
        return -1 if now >= m.end_s else _new_request(s, sm, now)
    if kind == OPEN:
        if now >= m.end_s or epoch != s.sm_i[sm, SM_EPOCH]:
            return -1
        r = _new_request(s, sm, now)
        _schedule(s.ctr, s.ev_t, s.ev_i, now, _URGENT, _E_SERVE, r, 0)
        _next_arrival(m, s, sm, now)
    elif kind == BATCH:
        for _ in range(m.ki[sm, K_COUNT]):
            r = _new_request(s, sm, now)
            _schedule(s.ctr, s.ev_t, s.ev_i, now, _URGENT, _E_SERVE, r, 0)
    else:
        r = _new_request(s, sm, now)
        _schedule(s.ctr, s.ev_t, s.ev_i, now, _URGENT, _E_SERVE, r, 0)
        j = s.sm_i[sm, SM_J]
        if j < m.ki[sm, K_COUNT]:
            t = m.trace_t[m.ki[sm, K_TRACE_LO] + j]
            _schedule(s.ctr, s.ev_t, s.ev_i, now + max(t - now, 0.0), _NORMAL, _E_ARRIVE, sm, 0)
    return -1


@_inline
def _init(m: Model, s: State, sm: int, now: float) -> int:
    """A stream's process starts (a closed client's first request when it goes at once; else -1)."""
    kind = m.ki[sm, K_KIND]
    if kind == CLOSED:
        return _client_next(m, s, sm, now)
    if kind == OPEN:
        s.sm_i[sm, SM_J] = 1
        _next_arrival(m, s, sm, now)
    elif kind == BATCH:
        _schedule(s.ctr, s.ev_t, s.ev_i, now + m.kf[sm, K_AT], _NORMAL, _E_ARRIVE, sm, 0)
    elif m.ki[sm, K_COUNT] > 0:
        t = m.trace_t[m.ki[sm, K_TRACE_LO]]
        _schedule(s.ctr, s.ev_t, s.ev_i, now + max(t - now, 0.0), _NORMAL, _E_ARRIVE, sm, 0)
    return -1


@_jit
def start(m: Model, s: State) -> None:
    """Start the background jobs of every shared station, then every stream (as the DES builds)."""
    now = s.clock[0]
    for st in range(m.si.shape[0]):
        lo, hi = m.si[st, S_BG_LO], m.si[st, S_BG_HI]
        if m.si[st, S_KIND] != SHARED or hi == lo:
            continue
        for b in range(lo, hi):
            node, count = m.bg[b, 0], m.bg[b, 1]
            _leaf(m.si, s.nd_i, s.nd_f, s.st_i, s.act, st, node)
            s.nd_i[node, ND_BG] += count
            _count(m.gi, s.nd_i, s.nd_f, node, count, now)
            _run(m.gi, m.gf, s.nd_i, s.st_i, st, node, count)
        _reschedule(m, s, st, now)
    for sm in range(m.ki.shape[0]):
        _schedule(s.ctr, s.ev_t, s.ev_i, now, _URGENT, _E_INIT, sm, 0)


@_jit
def _pending_need(s: State) -> int:
    """What a client stopped mid-call needs before it can go on: ``NEED_WORK`` (its samples) or ``NEED_REQUESTS``."""
    sm = s.ctr[C_PENDING] - 1
    if s.sm_i[sm, SM_ROW] >= s.sm_i[sm, SM_ROW_END]:
        s.ctr[C_NEED_STREAM] = sm
        return NEED_WORK
    return NEED_REQUESTS


@_inline
def _next_event(m: Model, s: State) -> tuple[float, int, int]:
    """The next event's time, key and, if it is a shared station's wake-up that comes before the
    queue's first event, that station (else -1)."""
    ctr, st_i, st_f, shared = s.ctr, s.st_i, s.st_f, m.shared
    now, key, wake = _INF, 0, -1
    if ctr[C_HEAP_N] > 0:
        now, key = s.ev_t[0], s.ev_i[0, EV_KEY]
    for j in range(shared.shape[0]):
        st = shared[j]
        wt = st_f[st, ST_WAKE_T]
        if wt < now or (wt == now and wt < _INF and st_i[st, ST_WAKE_KEY] < key):
            now, key, wake = wt, st_i[st, ST_WAKE_KEY], st
    return now, key, wake


@_inline
def _fifo_done(m: Model, s: State, st: int, r: int, now: float) -> None:
    """Request ``r`` leaves FIFO station ``st``: it resumes, and the next in the queue starts."""
    ctr, ev_t, ev_i = s.ctr, s.ev_t, s.ev_i
    _schedule(ctr, ev_t, ev_i, now, _NORMAL, _E_RESUME, r, 0)
    _note_busy(s.st_i, s.st_f, st, -1, now)
    if s.st_i[st, ST_Q_HEAD] >= 0:
        nxt = _dequeue(s.st_i, s.rq_i, st)
        w = s.work[s.rq_i[nxt, RQ_ROW], s.rq_i[nxt, RQ_STEP]]
        s.st_f[st, ST_WORK] += min(w, m.end_s - now)  # only what is served before the end
        _schedule(ctr, ev_t, ev_i, now + w, _NORMAL, _E_FIFO, st, nxt)
    else:
        s.st_i[st, ST_BUSY] -= 1


@_inline
def _take_event(m: Model, s: State, now: float) -> tuple[int, int]:
    """Pop the queue's first event and do it; the request to take on next and its slot (-1: none)."""
    kind, a, b = s.ev_i[0, EV_KIND], s.ev_i[0, EV_A], s.ev_i[0, EV_B]
    _pop_event(s.ctr, s.ev_t, s.ev_i)
    if kind == _E_RESUME:
        k = s.rq_i[a, RQ_STEP] + 1
        s.rq_stage[a, k - 1] = now - s.rq_f[a, RQ_T0]
        return a, k
    if kind == _E_FIFO:
        _fifo_done(m, s, a, b, now)
        return -1, 0
    if kind == _E_SERVE:
        return a, 0
    if kind == _E_ARRIVE:
        return _arrive(m, s, a, b, now), 0
    return _init(m, s, a, now), 0


@_jit
def run_until(m: Model, s: State, until: float) -> int:
    """Process every event before ``until`` (s); DONE, or what must grow before calling again."""
    ctr = s.ctr
    if ctr[C_PENDING]:  # a client stopped for room on the last call goes on, at the time it stopped
        sm = ctr[C_PENDING] - 1
        ctr[C_PENDING] = 0
        r = _client_next(m, s, sm, s.clock[0])
        while r >= 0:
            r = _serve(m, s, r, 0, s.clock[0])
        if ctr[C_PENDING]:
            return _pending_need(s)
    while True:
        now, _, wake = _next_event(m, s)
        if not now < until:
            break
        need = _room(m, s, wake)
        if need != DONE:
            return need
        s.clock[0] = now
        if wake >= 0:
            s.st_f[wake, ST_WAKE_T] = _INF
            _advance(m, s, wake, now)
            _reschedule(m, s, wake, now)
            continue
        r, k = _take_event(m, s, now)
        while r >= 0:
            r = _serve(m, s, r, k, now)
            k = 0
        if ctr[C_PENDING]:
            return _pending_need(s)
    if until > s.clock[0]:
        s.clock[0] = until
    return DONE


@_jit
def set_gap_mean(m: Model, s: State, sm: int, mean_s: float) -> None:
    """Open stream ``sm``'s mean gap (s) from now on; inf stops its arrivals. Its pending arrival
    is moved: the time left to it scaled by new / old mean (an exponential gap is memoryless,
    so the scaled rest is a gap at the new rate); after a stop, a fresh gap from now. The caller
    makes room for one event and, after a stop, one pooled gap."""
    now = s.clock[0]
    old = m.kf[sm, K_SCALE]
    m.kf[sm, K_SCALE] = mean_s
    if s.sm_i[sm, SM_J] == 0:
        return  # not started: its first gap, drawn when it starts, follows the new mean
    s.sm_i[sm, SM_EPOCH] += 1  # the pending arrival, if any, is void
    if mean_s == _INF:
        m.kf[sm, K_NEXT] = _INF
    elif old == _INF:
        _next_arrival(m, s, sm, now)
    else:
        t = now + (m.kf[sm, K_NEXT] - now) / old * mean_s
        m.kf[sm, K_NEXT] = t
        _schedule(s.ctr, s.ev_t, s.ev_i, t, _NORMAL, _E_ARRIVE, sm, s.sm_i[sm, SM_EPOCH])


@_jit
def set_paused(s: State, sm: int, paused: bool) -> None:
    """Pause closed client ``sm`` (it makes no request after the one it is thinking towards or
    waiting for) or take it up again: a client that went idle starts again now, as a process
    woken by an event (normal priority): its think time, then its request. As the DES's
    :meth:`~virtsim.sim.engine.DesRun.set_clients`. The caller makes room for one event."""
    if paused:
        s.sm_i[sm, SM_PAUSE] = 1
        return
    s.sm_i[sm, SM_PAUSE] = 0
    if s.sm_i[sm, SM_IDLE]:
        s.sm_i[sm, SM_IDLE] = 0
        _schedule(s.ctr, s.ev_t, s.ev_i, s.clock[0], _NORMAL, _E_INIT, sm, 0)


@_jit
def set_quota(m: Model, s: State, st: int, node: int, quota_s: float, period_s: float) -> None:
    """As SharedStation.set_quota: account up to now, then the new cpu.max, refilled, unthrottled."""
    now = s.clock[0]
    _advance(m, s, st, now)
    m.gf[node, G_QUOTA] = quota_s
    m.gf[node, G_PERIOD] = period_s
    s.nd_f[node, ND_USED] = 0.0
    s.nd_i[node, ND_THROTTLED] = 0
    _reschedule(m, s, st, now)


@_jit
def settle(m: Model, s: State) -> None:
    """Account work up to now on shared stations and locks (the DES does this at the end)."""
    now = s.clock[0]
    for st in range(m.si.shape[0]):
        if m.si[st, S_KIND] == SHARED:
            _advance(m, s, st, now)
        elif m.si[st, S_KIND] == LOCK:
            _lock_account(s.st_i, s.st_f, st, now)
