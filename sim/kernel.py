"""The compiled engine: the DES's model run by a numba event loop (:mod:`virtsim.sim.kernel_loop`).

:func:`simulate_kernel` takes what :func:`virtsim.sim.engine.simulate` takes and returns the same
:class:`~virtsim.sim.engine.RunResult`, with the same requests at the same times: it draws the
same keyed random streams in the same order, and its loop replays the DES's events one for one.
:class:`KernelRun` runs it step by step (``step(until_s)``), for control loops.

How the model is laid out for the loop:

- **stations** by index, in the order given; a shared station's groups are **nodes** (one per
  group path, its root the path ``()``), with parent links, so a group's jobs, caps and quota
  live in per-node arrays;
- **streams**: one per open, batch or trace source, one per client of a closed source; each has
  its route resolved to (action, station, node, idle condition) per slot, because a closed
  client's slots may name its own thread group (:attr:`Slot.per_client`);
- **samples**: each stream's work rows and gaps (arrival gaps, think times) are drawn in chunks
  into two pools; the loop asks for another chunk when a stream runs out, and the chunk is drawn
  from the stream's own sampler, so the numbers are those the DES draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from virtsim.sim import kernel_loop as kl
from virtsim.sim.affinity import affinity_scratch_sizes
from virtsim.sim.control import MAX_RECORD_BYTES, RunControl, RunTooLarge, SteppedRun
from virtsim.sim.engine import RunResult
from virtsim.sim.records import RequestLog
from virtsim.sim.rng import stream, stream_seed
from virtsim.sim.routes import (
    BatchArrivals,
    BatchSampler,
    ClosedArrivals,
    OpenArrivals,
    Slot,
    Source,
    StationSpec,
    TraceArrivals,
    WorkSampler,
    batch_sampler,
    changeable_source,
    check_clients,
    check_network,
    check_rate,
)
from virtsim.sim.stations import GroupPath, check_cores, check_quota, stream_leaf

__all__ = ["KernelRun", "compile_kernel", "simulate_kernel"]

_KINDS = {"fifo": kl.FIFO, "delay": kl.DELAY, "shared": kl.SHARED, "lock": kl.LOCK, "stream": kl.STREAM}
_ACTIONS = {"": kl.SUBMIT, "acquire": kl.ACQUIRE, "release": kl.RELEASE}
_FIRST_CHUNK_CLOSED = 16  # a closed client's first chunk of samples; each next one doubles, or
_CHUNK_FLOATS = 1 << 17  # follows the client's pace up to this many numbers (1 MiB) in one chunk
_BATCH_FLOATS = 1 << 21  # a source's clients drawn together: at most this many numbers (16 MiB) at once


@dataclass
class _Clients:
    """The closed clients of one source, whose work rows are drawn together (:meth:`KernelRun._rows`)."""

    sample: BatchSampler
    streams: list[int]  # their stream indices, in client order


@dataclass
class _Stream:
    """Where one stream's samples come from, and the size of its next chunk."""

    source: int
    sampler: WorkSampler
    gaps: np.random.Generator | None  # arrival gaps or think times
    gap_mean_s: float
    width: int
    chunk: int
    gap_chunk: int = 0
    filled_at: float | None = None  # when its work rows were last drawn (s)
    last_chunk: int = 0  # how many were drawn then
    clients: _Clients | None = None  # a closed client's fellow clients, drawn with it
    pending: np.ndarray | None = None  # its next rows, drawn with another client's


@dataclass
class _Nodes:
    """The groups of every shared station, as the loop's node arrays are built from them."""

    ids: dict[tuple[int, GroupPath], int] = field(default_factory=dict)
    station: list[int] = field(default_factory=list)
    path: list[GroupPath] = field(default_factory=list)

    def add(self, st: int, path: GroupPath) -> int:
        """The node of ``path`` on station ``st`` (made, with its ancestors, if new)."""
        key = (st, path)
        if key not in self.ids:
            if path:
                self.add(st, path[:-1])
            self.ids[key] = len(self.path)
            self.station.append(st)
            self.path.append(path)
        return self.ids[key]


def _no_own_sampler(n: int) -> np.ndarray:
    raise AssertionError("a closed client's rows are drawn with its fellow clients' (KernelRun._rows)")


class KernelRun(SteppedRun):
    """One replication on the compiled engine, advanced with :meth:`step`.

    ``KernelRun(stations, sources, control, replication).step(control.duration_s)`` followed by
    :meth:`result` is :func:`simulate_kernel`.
    """

    def __init__(self, stations: Sequence[StationSpec], sources: Sequence[Source], control: RunControl,
                 replication: int = 0) -> None:
        check_network(stations, sources)
        for spec in stations:  # as SharedStation does: bound cores must be the station's
            if spec.kind == "shared":
                check_cores(spec.name, spec.servers, {p[0]: g.cores for p, g in spec.groups.items()
                                                      if len(p) == 1 and g.cores is not None})
        self.stations = list(stations)
        self.sources = list(sources)
        self.control = control
        self.replication = replication
        self._index = {s.name: i for i, s in enumerate(self.stations)}
        self._nodes = _Nodes()
        self._stream_nodes: dict[int, int] = {}  # a leaf of streams: its bandwidth domain's station
        for i, spec in enumerate(self.stations):
            if spec.kind == "shared":
                self._nodes.add(i, ())
                for path in (*spec.groups, *spec.background):
                    self._nodes.add(i, path)
        self._streams: list[_Stream] = []
        self._steps: list[list[tuple[int, int, int, int, int, float]]] = []
        self._resolutions: dict[tuple[str, tuple[int, ...]], list[tuple[int, int, int, int, int, float]]] = {}
        for i, source in enumerate(self.sources):
            self._add_streams(i, source)
        self.model = self._model()
        self.state = self._state()
        for j in range(len(self._streams)):
            self._fill_work(j)
            self._fill_gaps(j)
        kl.start(self.model, self.state)
        self._at_warmup: dict[str, float] | None = None  # work served by the end of the warm-up

    # -- building ------------------------------------------------------------------------------

    def _add_streams(self, i: int, source: Source) -> None:
        """Add the streams of source ``i`` (one per closed client, else one), with samplers and first chunk sizes."""
        seed, rep, width = self.control.seed, self.replication, len(source.route)
        arrivals = source.arrivals
        if isinstance(arrivals, ClosedArrivals):
            seeds = [stream_seed(seed, rep, source.name, "work", c) for c in range(arrivals.clients)]
            clients = _Clients(batch_sampler(source, seeds), list(range(len(self._streams),
                                                                        len(self._streams) + arrivals.clients)))
            for c in range(arrivals.clients):
                self._steps.append(self._resolve(source, c))
                think = stream(seed, rep, source.name, "think", c) if arrivals.think_s > 0 else None
                self._streams.append(_Stream(i, _no_own_sampler, think, arrivals.think_s, width,
                                             _FIRST_CHUNK_CLOSED, _FIRST_CHUNK_CLOSED, clients=clients))
            return
        self._steps.append(self._resolve(source, 0))
        sampler = source.make_sampler(stream_seed(seed, rep, source.name, "work"))
        if isinstance(arrivals, OpenArrivals):
            mean = arrivals.rate_per_s * self.control.duration_s
            chunk = int(mean + 6 * math.sqrt(mean)) + 64  # all of them, almost always
            self._streams.append(_Stream(i, sampler, stream(seed, rep, source.name, "arrivals"),
                                         1.0 / arrivals.rate_per_s, width, chunk, chunk + 1))
        elif isinstance(arrivals, BatchArrivals):
            self._streams.append(_Stream(i, sampler, None, 0.0, width, arrivals.count))
        else:
            count = len(self._trace_times(arrivals))
            self._streams.append(_Stream(i, sampler, None, 0.0, width, max(count, 1)))

    def _trace_times(self, arrivals: TraceArrivals) -> list[float]:
        """The trace's arrival times (s) before the run's end."""
        return [t for t in arrivals.times_s if t < self.control.duration_s]

    def _resolve(self, source: Source, client: int) -> list[tuple[int, int, int, int, int, float]]:
        """Each slot as (action, station, node, condition station, condition node, min idle);
        clients whose slots name the same groups (all of them, on a route without ``per_client``
        slots) share one resolution: an oltp route has 480 slots, a closed loop 32 clients."""
        splits = sorted({p for slot in source.route
                         for p in (slot.per_client, slot.when_idle.per_client if slot.when_idle else 0) if p})
        key = (source.name, tuple(client // p for p in splits))
        known = self._resolutions.get(key)
        if known is None:
            known = self._resolutions[key] = self._resolve_slots(source, client)
        return known

    def _resolve_slots(self, source: Source, client: int) -> list[tuple[int, int, int, int, int, float]]:
        """:meth:`_resolve` for one client, slot by slot."""
        out = []
        for slot in source.route:
            group = (*slot.group, str(client // slot.per_client)) if slot.per_client else slot.group
            st, node = self._node(slot.station, group)
            cst, cnode, cmin = -1, -1, 0.0
            if slot.when_idle is not None:
                c = slot.when_idle
                target = (*c.group, str(client // c.per_client)) if c.per_client else c.group
                cst, cnode = self._node(c.station, target)
                cmin = c.min_idle_s
            out.append((_ACTIONS[slot.action], st, node, cst, cnode, cmin))
        return out

    def _node(self, station: str, group: GroupPath) -> tuple[int, int]:
        """The station and node ``group``'s work at ``station`` goes to (node -1 off a shared
        station): a stream station's, to its CPU, in the leaf ``(*group, stream_leaf(station))``
        (as :class:`~virtsim.sim.stations.StreamStation` submits)."""
        st = self._index[station]
        spec = self.stations[st]
        if spec.kind == "stream":
            cpu = self._index[spec.cpu]
            node = self._nodes.add(cpu, (*group, stream_leaf(station)))
            self._stream_nodes[node] = st
            return cpu, node
        return st, self._nodes.add(st, group) if spec.kind == "shared" else -1

    def _model(self) -> kl.Model:
        """The loop's fixed tables (:class:`~virtsim.sim.kernel_loop.Model`) for these stations, nodes and streams."""
        si, sf, q_nodes, bg = self._station_tables()
        gi, gf, cores = self._group_tables()
        steps, cond_min = self._step_tables()
        ki, kf, trace = self._stream_tables()
        top = self._slice_tables(si, sf)
        return kl.Model(
            end_s=float(self.control.duration_s), si=si, sf=sf, gi=gi, gf=gf, cores=cores,
            shared=np.flatnonzero(si[:, kl.S_KIND] == kl.SHARED).astype(np.int64),
            q_nodes=np.array(q_nodes, np.int64), bg=np.array(bg, np.int64).reshape(-1, 2), ki=ki, kf=kf,
            steps=steps, cond_min=cond_min, trace_t=np.array(trace, float), top=top,
        )

    def _slice_tables(self, si: np.ndarray, sf: np.ndarray) -> np.ndarray:
        """Time slices (:mod:`virtsim.sim.slices`): per sliced station its parameters and the
        ranges of its slots and entities into ``si``/``sf``, and its root then its top-level
        groups in order of name (the DES's order of groups: the root's own jobs are ``""``)."""
        top: list[int] = []
        slots_total = 0
        for st, spec in enumerate(self.stations):
            si[st, kl.S_TOP_LO] = len(top)
            if spec.kind == "shared" and spec.slices is not None:
                nodes = self._nodes
                children = sorted((path[0], node) for (owner, path), node in nodes.ids.items()
                                  if owner == st and len(path) == 1)
                top += [nodes.ids[(st, ())], *(node for _, node in children)]
                slots = int(spec.servers) * spec.threads_per_server
                si[st, kl.S_SLOTS], si[st, kl.S_SL_LO] = slots, slots_total
                slices = spec.slices
                sf[st, kl.S_LATENCY], sf[st, kl.S_MIN_SLICE] = slices.latency_s, slices.min_slice_s
                sf[st, kl.S_WAKEUP] = -1.0 if slices.wakeup_s is None else slices.wakeup_s
                sf[st, kl.S_CREDIT] = slices.sleeper_credit_s
                sf[st, kl.S_MIN_RUN] = slices.min_run_s
                slots_total += slots
            si[st, kl.S_TOP_HI] = len(top)
        self._slots_total = slots_total
        return np.array(top, np.int64)

    def _station_tables(self) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[int, int]]]:
        """Per station its kind, sizes, root node and ranges of quota nodes and background jobs
        (``si``, ``sf``), with the quota nodes and (node, count) background jobs those ranges index."""
        st_specs, nodes = self.stations, self._nodes
        n_st = len(st_specs)
        si = np.zeros((n_st, 14), np.int64)
        sf = np.zeros((n_st, kl.S_FCOLS))
        si[:, kl.S_ROOT] = -1
        per_station = np.bincount(np.asarray(nodes.station, np.int64), minlength=n_st)
        si[1:, kl.S_ACT_LO] = np.cumsum(per_station)[:-1]
        for node, (st, path) in enumerate(zip(nodes.station, nodes.path, strict=True)):
            if not path:
                si[st, kl.S_ROOT] = node
        q_nodes: list[int] = []
        bg: list[tuple[int, int]] = []
        for st, spec in enumerate(st_specs):
            si[st, kl.S_KIND] = _KINDS[spec.kind]
            si[st, kl.S_TPS] = spec.threads_per_server
            sf[st, kl.S_SERVERS], sf[st, kl.S_SMT] = spec.servers, spec.smt_yield
            si[st, kl.S_QLO], si[st, kl.S_BG_LO] = len(q_nodes), len(bg)
            if spec.kind == "shared":
                q_nodes += [nodes.ids[(st, p)] for p, g in spec.groups.items() if g.quota_s is not None]
                bg += [(nodes.ids[(st, p)], count) for p, count in spec.background.items()]
                si[st, kl.S_PINNED] = any(len(p) == 1 and g.cores is not None for p, g in spec.groups.items())
                si[st, kl.S_DOMAINS] = any(o.kind == "stream" and o.cpu == spec.name for o in st_specs)
            si[st, kl.S_QHI], si[st, kl.S_BG_HI] = len(q_nodes), len(bg)
        return si, sf, q_nodes, bg

    def _group_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per node its depth, parent, spec, weight, cap, threads, quota (``gi``, ``gf``) and the
        cores a top-level pinned group may use."""
        st_specs, nodes = self.stations, self._nodes
        n_nd = len(nodes.path)
        max_core = max([max(g.cores) + 1 for s in st_specs for g in s.groups.values() if g.cores] or [1])
        gi = np.zeros((n_nd, 6), np.int64)
        gi[:, kl.G_DOMAIN] = -1
        gf = np.zeros((n_nd, 5))
        gf[:, kl.G_WEIGHT] = 100.0
        gf[:, kl.G_SERVERS] = np.inf
        gf[:, kl.G_CAPCOUNT] = np.inf
        gf[:, kl.G_QUOTA] = np.inf
        gf[:, kl.G_PERIOD] = 0.1
        cores = np.zeros((n_nd, max_core), np.bool_)
        for node, (st, path) in enumerate(zip(nodes.station, nodes.path, strict=True)):
            gi[node, kl.G_DEPTH] = len(path)
            gi[node, kl.G_PARENT] = nodes.ids[(st, path[:-1])] if path else -1
            if not path:
                gf[node, kl.G_CAPCOUNT] = st_specs[st].servers
                continue
            if node in self._stream_nodes:  # made by _node for a stream station: not a group of its own
                gi[node, kl.G_DOMAIN] = self._stream_nodes[node]
                continue
            g = st_specs[st].groups.get(path)
            if g is None:
                continue
            gi[node, kl.G_SPEC] = 1
            # a top-level group's cores are host cores, with their SMT threads; below a VM, vCPUs
            servers = g.servers_on(st_specs[st].threads_per_server if len(path) == 1 else 1)
            gf[node, kl.G_WEIGHT], gf[node, kl.G_SERVERS] = g.weight, servers
            if math.isfinite(servers):
                gf[node, kl.G_CAPCOUNT] = servers
            gi[node, kl.G_THREADS] = g.threads or 0
            if g.quota_s is not None:
                gf[node, kl.G_QUOTA], gf[node, kl.G_PERIOD] = g.quota_s, g.period_s
            if len(path) == 1 and g.cores is not None:
                gi[node, kl.G_PINNED] = 1
                cores[node, list(g.cores)] = True
        return gi, gf, cores

    def _step_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per stream and slot: what to do, the station, the node, the condition's station and node
        (``steps``), and the condition's least idle time (``cond_min``)."""
        n_sm = len(self._streams)
        width = max([len(s.route) for s in self.sources] or [1])
        steps = np.zeros((n_sm, width, 5), np.int64)
        cond_min = np.zeros((n_sm, width))
        tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per resolution (clients share them)
        for j, resolved in enumerate(self._steps):
            if id(resolved) not in tables:
                table = np.array(resolved, dtype=float).reshape(-1, 6)
                tables[id(resolved)] = table[:, :5].astype(np.int64), table[:, 5]
            ints, mins = tables[id(resolved)]
            steps[j, :len(ints)] = ints
            cond_min[j, :len(mins)] = mins
        return steps, cond_min

    def _stream_tables(self) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """Per stream how its requests arrive (``ki``, ``kf``), and the trace times they index."""
        n_sm = len(self._streams)
        kinds = {OpenArrivals: kl.OPEN, ClosedArrivals: kl.CLOSED, BatchArrivals: kl.BATCH, TraceArrivals: kl.TRACE}
        ki = np.zeros((n_sm, 5), np.int64)
        kf = np.zeros((n_sm, 4))
        kf[:, kl.K_SCALE], kf[:, kl.K_NEXT] = 1.0, np.inf
        trace: list[float] = []
        for j, s in enumerate(self._streams):
            arrivals = self.sources[s.source].arrivals
            ki[j, kl.K_KIND], ki[j, kl.K_SOURCE], ki[j, kl.K_LEN] = kinds[type(arrivals)], s.source, s.width
            if isinstance(arrivals, BatchArrivals):
                ki[j, kl.K_COUNT], kf[j, kl.K_AT] = arrivals.count, arrivals.at_s
            elif isinstance(arrivals, TraceArrivals):
                times = self._trace_times(arrivals)
                ki[j, kl.K_TRACE_LO], ki[j, kl.K_COUNT] = len(trace), len(times)
                trace += times
            elif isinstance(arrivals, ClosedArrivals):
                kf[j, kl.K_THINK] = arrivals.think_s
            else:
                kf[j, kl.K_SCALE] = s.gap_mean_s  # open: unit gaps pooled, scaled as they are used
        return ki, kf, trace

    def _expected_requests(self, width: int) -> int:
        """Room for the requests the run will most likely make, so the records rarely grow (each
        growth copies them): open streams' first chunks (their expected count plus 6 sd), batches,
        traces, 1,024 more; at most what the record budget allows."""
        expected = 1024
        for j, s in enumerate(self._streams):
            if self.model.ki[j, kl.K_KIND] != kl.CLOSED:
                expected += s.chunk
        per_request = 8 * (kl.RQ_COLS + 4 + width + 1)  # rq_i, rq_f, rq_stage, pairs
        return min(expected, max(1024, MAX_RECORD_BYTES // (2 * per_request)))

    def _state(self) -> kl.State:
        """A fresh :class:`~virtsim.sim.kernel_loop.State`, sized for the streams' first chunks (it grows as needed)."""
        n_st, n_nd, n_sm = len(self.stations), len(self._nodes.path), len(self._streams)
        width = self.model.steps.shape[1]
        events = 2 * n_sm + 4 * n_st + 1024
        requests = self._expected_requests(width)
        rows = sum(s.chunk for s in self._streams) + 16
        gaps = sum(s.gap_chunk for s in self._streams) + 16
        st_i = np.zeros((n_st, 10), np.int64)
        st_i[:, [kl.ST_Q_HEAD, kl.ST_Q_TAIL]] = -1
        st_f = np.zeros((n_st, 6))
        st_f[:, kl.ST_IDLE_SINCE] = -np.inf
        st_f[:, kl.ST_WAKE_T] = np.inf
        nd_i = np.zeros((n_nd, kl.ND_COLS), np.int64)
        nd_i[:, [kl.ND_ROOT_JOB, kl.ND_WAIT_HEAD, kl.ND_WAIT_TAIL, kl.ND_FIRST, kl.ND_LAST, kl.ND_NEXT]] = -1
        nd_f = np.zeros((n_nd, 13))
        nd_f[:, kl.ND_IDLE] = -np.inf
        nd_f[:, kl.ND_SV] = -np.inf
        nd_f[:, kl.ND_SLEPT] = np.nan
        rq_f = np.zeros((requests, 4))
        rq_f[:, [kl.RQ_ARRIVAL, kl.RQ_FINISH]] = np.nan
        # core affinity's scratch: as much as the largest station with bound groups needs
        n_cores = max([int(spec.servers) for st, spec in enumerate(self.stations) if self.model.si[st, kl.S_PINNED]]
                      or [1])
        n_a, n_b = affinity_scratch_sizes(n_nd + 1, n_nd + 1, n_cores)
        slots = max(self._slots_total, 1)
        sl_i = np.full((slots, 2), -1, np.int64)
        sl_f = np.full((slots, kl.SL_COLS), np.inf)
        sl_f[:, kl.SL_REL_T] = np.nan
        sl_f[:, kl.SL_MIN_V] = 0.0
        return kl.State(
            ctr=np.zeros(8, np.int64), clock=np.zeros(1), ev_t=np.zeros(events), ev_i=np.zeros((events, 4), np.int64),
            st_i=st_i, st_f=st_f, act=np.full(max(n_nd, 1), -1, np.int64), nd_i=nd_i, nd_f=nd_f,
            scratch_i=np.zeros(4 * (n_nd + 1), np.int64), scratch_p=np.zeros(n_nd + 1, np.int64),
            scratch_m=np.zeros((n_nd + 1, n_cores), np.bool_),
            scratch_a=np.zeros(n_a), scratch_b=np.zeros(n_b, np.int64), scratch_f=np.zeros(3 * n_nd + 3),
            sm_i=np.zeros((n_sm, 8), np.int64), work=np.zeros((rows, width)), gaps=np.zeros(gaps),
            rq_i=np.full((requests, kl.RQ_COLS), -1, np.int64), rq_f=rq_f, rq_stage=np.zeros((requests, width)),
            pairs=np.zeros(requests, np.int64),
            sl_i=sl_i, sl_f=sl_f,
        )

    # -- growing between calls -------------------------------------------------------------

    def _fill_work(self, j: int) -> None:
        """Draw the next chunk of stream ``j``'s work rows into the pool."""
        s, st = self._streams[j], self.state
        n = s.chunk
        closed = self.model.ki[j, kl.K_KIND] == kl.CLOSED
        now = float(st.clock[0])
        if closed and s.filled_at is not None and now > s.filled_at:
            # A client's pace so far foretells how many more it makes before the end: drawing
            # them in one call saves the Python lowering's fixed cost per call (about 15 ms for an
            # oltp transaction's 480 stages), which doubling from 16 paid four times per client.
            # The numbers do not depend on the chunks (each sampler draws in sequence).
            pace = s.last_chunk / (now - s.filled_at)
            expected = math.ceil(1.25 * pace * max(self.control.duration_s - now, 0.0)) + 8
            n = max(_FIRST_CHUNK_CLOSED, min(expected, max(n, _CHUNK_FLOATS // max(s.width, 1))))
        used = int(st.ctr[kl.C_ROWS_USED])
        rows = self._rows(j, n)
        n = rows.shape[0]
        if used + n > st.work.shape[0]:
            grown = np.zeros((max(2 * st.work.shape[0], used + n), st.work.shape[1]))
            grown[:used] = st.work[:used]
            self.state = st = st._replace(work=grown)
        st.work[used:used + n, :s.width] = rows
        st.sm_i[j, kl.SM_ROW], st.sm_i[j, kl.SM_ROW_END] = used, used + n
        st.ctr[kl.C_ROWS_USED] = used + n
        if closed:
            s.chunk, s.filled_at, s.last_chunk = 2 * n, now, n

    def _rows(self, j: int, n: int) -> np.ndarray:
        """Stream ``j``'s next work rows: ``n`` of them, or the rows drawn for it earlier with
        another client's. A closed client draws with its fellow clients that have nothing drawn
        ahead (as many as :data:`_BATCH_FLOATS` allows), ``n`` rows each: one lowering for all of
        them, the same numbers as one each (their samplers draw in sequence)."""
        s = self._streams[j]
        if s.pending is not None:
            rows, s.pending = s.pending, None
            return rows
        if s.clients is None:
            return s.sampler(n)
        budget = _BATCH_FLOATS // max(s.width, 1) - n
        counts = []
        for k in s.clients.streams:
            take = k == j or (self._streams[k].pending is None and budget >= n)
            if take and k != j:
                budget -= n
            counts.append(n if take else 0)
        drawn = s.clients.sample(counts)
        for k, rows in zip(s.clients.streams, drawn, strict=True):
            if k != j and rows.shape[0]:
                self._streams[k].pending = rows
        return drawn[s.clients.streams.index(j)]

    def _fill_gaps(self, j: int) -> None:
        """Draw the next chunk of stream ``j``'s arrival gaps or think times (s) into the pool (none without gaps)."""
        s, st = self._streams[j], self.state
        if s.gaps is None:
            return
        n = s.gap_chunk
        used = int(st.ctr[kl.C_GAPS_USED])
        if used + n > st.gaps.shape[0]:
            grown = np.zeros(max(2 * st.gaps.shape[0], used + n))
            grown[:used] = st.gaps[:used]
            self.state = st = st._replace(gaps=grown)
        if self.model.ki[j, kl.K_KIND] == kl.OPEN:  # in units of the mean, which set_gap_mean changes
            st.gaps[used:used + n] = s.gaps.standard_exponential(n)
        else:
            st.gaps[used:used + n] = s.gaps.exponential(s.gap_mean_s, n)
        st.sm_i[j, kl.SM_GAP], st.sm_i[j, kl.SM_GAP_END] = used, used + n
        st.ctr[kl.C_GAPS_USED] = used + n
        if self.model.ki[j, kl.K_KIND] == kl.CLOSED:
            s.gap_chunk *= 2

    def _grow(self, names: tuple[str, ...]) -> None:
        """Double the first dimension of the named state arrays (new rows as a fresh state's);
        :class:`RunTooLarge` if the request records would pass :data:`MAX_RECORD_BYTES`."""
        if "rq_stage" in names:
            st = self.state
            rows = 2 * st.rq_i.shape[0]
            per_request = sum(getattr(st, n).nbytes // max(getattr(st, n).shape[0], 1) for n in names)
            if rows * per_request + st.work.nbytes > MAX_RECORD_BYTES:
                raise RunTooLarge.at(int(st.ctr[kl.C_REQ_N]), self.now_s, self.control.duration_s, rows,
                                     per_request)
        grown = {}
        for name in names:
            a = getattr(self.state, name)
            b = np.empty((2 * a.shape[0], *a.shape[1:]), a.dtype)
            b[:a.shape[0]] = a
            b[a.shape[0]:] = -1 if name == "rq_i" else 0  # only the new rows are written
            if name == "rq_f":
                b[a.shape[0]:, kl.RQ_ARRIVAL] = b[a.shape[0]:, kl.RQ_FINISH] = np.nan
            grown[name] = b
        self.state = self.state._replace(**grown)

    # -- running -------------------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        """Simulated time reached, in seconds."""
        return float(self.state.clock[0])

    def _advance(self, until_s: float) -> None:
        """Run every event before ``until_s`` (s), growing the arrays as the loop asks."""
        while True:
            need = kl.run_until(self.model, self.state, float(until_s))  # an int would compile anew
            if need == kl.DONE:
                return
            if need == kl.NEED_HEAP:
                self._grow(("ev_t", "ev_i"))
            elif need == kl.NEED_REQUESTS:
                self._grow(("rq_i", "rq_f", "rq_stage", "pairs"))
            elif need == kl.NEED_WORK:
                self._fill_work(int(self.state.ctr[kl.C_NEED_STREAM]))
            else:
                self._fill_gaps(int(self.state.ctr[kl.C_NEED_STREAM]))

    def _room_for_completions(self) -> None:
        """Room in the event queue for every request in flight to finish now (each gets an event)."""
        while self.state.ctr[kl.C_HEAP_N] + 2 * self.state.ctr[kl.C_INFLIGHT] + 16 > self.state.ev_t.shape[0]:
            self._grow(("ev_t", "ev_i"))

    def set_quota(self, station: str, group: GroupPath, quota_s: float, period_s: float) -> None:
        """Change the ``cpu.max`` of a group that has one, from now on (as the DES's
        :meth:`~virtsim.sim.stations.SharedStation.set_quota`)."""
        st = self._index.get(station, -1)
        spec = self.stations[st].groups.get(group) if st >= 0 else None
        if spec is None or spec.quota_s is None:
            raise ValueError(f"station {station!r}: group {group} has no cpu.max to change "
                             "(give the guest a cpu_max when the run starts)")
        check_quota(quota_s, period_s)
        self._room_for_completions()
        kl.set_quota(self.model, self.state, st, self._nodes.ids[(st, group)], float(quota_s), float(period_s))

    def set_rate(self, source: str, rate_per_s: float) -> None:
        """Open-loop ``source``'s arrival rate (1/s) from now on; 0 stops its arrivals (those in
        flight finish), a positive rate after 0 starts them again (see
        :func:`~virtsim.sim.kernel_loop.set_gap_mean`; the DES's :meth:`~virtsim.sim.engine.DesRun.set_rate`)."""
        i = changeable_source(self.sources, source, OpenArrivals)
        j = next(k for k, s in enumerate(self._streams) if s.source == i)
        mean = check_rate(source, rate_per_s)
        self._room_for_completions()
        st = self.state
        if st.sm_i[j, kl.SM_GAP] >= st.sm_i[j, kl.SM_GAP_END]:
            self._fill_gaps(j)
        kl.set_gap_mean(self.model, self.state, j, float(mean))

    def set_clients(self, source: str, clients: int) -> None:
        """Closed-loop ``source``'s active clients from now on: clients 0..clients-1 run, the rest
        stop after the request they are thinking towards or waiting for (see
        :func:`~virtsim.sim.kernel_loop.set_paused`; the DES's
        :meth:`~virtsim.sim.engine.DesRun.set_clients`)."""
        i = changeable_source(self.sources, source, ClosedArrivals)
        streams = [k for k, s in enumerate(self._streams) if s.source == i]
        check_clients(source, clients, len(streams))
        for c, j in enumerate(streams):
            self._room_for_completions()
            kl.set_paused(self.state, j, bool(c >= clients))

    def logs(self) -> dict[str, RequestLog]:
        """Each source's requests so far (unfinished ones have a NaN finish time)."""
        st, m = self.state, self.model
        n = int(st.ctr[kl.C_REQ_N])
        source_of = m.ki[st.rq_i[:n, kl.RQ_STREAM], kl.K_SOURCE]
        order = np.argsort(source_of, kind="stable")
        bounds = np.searchsorted(source_of[order], np.arange(len(self.sources) + 1))
        logs = {}
        for i, source in enumerate(self.sources):
            rows = order[bounds[i]:bounds[i + 1]]
            k = len(source.route)
            logs[source.name] = RequestLog(source.places, source.layers, st.rq_f[rows, kl.RQ_ARRIVAL],
                                           st.rq_f[rows, kl.RQ_FINISH], st.rq_stage[rows, :k], len(rows),
                                           source.shares)
        return logs

    def _served(self) -> dict[str, float]:
        """Work served so far (s), per station with a capacity and per labelled group."""
        self._room_for_completions()
        kl.settle(self.model, self.state)
        st, m = self.state, self.model
        now, end = float(st.clock[0]), m.end_s
        # a FIFO job counts its whole work (to the run's end) when it starts: less what is left
        n = int(st.ctr[kl.C_HEAP_N])
        fifo = st.ev_i[:n, kl.EV_KIND] == kl.E_FIFO
        left = np.zeros(len(self.stations))
        np.add.at(left, st.ev_i[:n, kl.EV_A][fifo], np.maximum(np.minimum(st.ev_t[:n][fifo], end) - now, 0.0))
        served: dict[str, float] = {}
        for i, spec in enumerate(self.stations):
            if math.isfinite(spec.capacity):  # as the DES: a delay (or an infinite CPU) has no utilization
                served[spec.name] = float(st.st_f[i, kl.ST_WORK]) - float(left[i])
        subtree = st.nd_f[:, kl.ND_WORK].copy()  # work of each group and the groups inside it
        for node in range(len(subtree) - 1, -1, -1):  # a node's parent was made before it
            parent = m.gi[node, kl.G_PARENT]
            if parent >= 0:
                subtree[parent] += subtree[node]
        for i, spec in enumerate(self.stations):
            if spec.kind == "shared":
                for path, g in spec.groups.items():
                    if g.label:
                        served[g.label] = float(subtree[self._nodes.ids[(i, path)]])
        return served

    def result(self) -> RunResult:
        """Logs and utilization as :func:`virtsim.sim.engine.simulate` gives them (after the last step)."""
        served = self._served()
        before = self._at_warmup or {}
        logs = self.logs()
        window = self.control.duration_s - self.control.warmup_s
        capacity: dict[str, float] = {}
        for spec in self.stations:
            capacity[spec.name] = spec.capacity
            if spec.kind == "shared":
                for g in spec.groups.values():
                    if g.label:
                        capacity[g.label] = g.servers if math.isfinite(g.servers) else spec.capacity
        utilization = {name: (work - before.get(name, 0.0)) / (capacity[name] * window)
                       for name, work in served.items()}
        return RunResult(logs, utilization, self.replication)


def simulate_kernel(stations: Sequence[StationSpec], sources: Sequence[Source], control: RunControl,
                    replication: int = 0) -> RunResult:
    """Run one replication on the compiled engine: :func:`virtsim.sim.engine.simulate`, faster."""
    run = KernelRun(stations, sources, control, replication)
    run.step(control.duration_s)
    return run.result()


_compiled = False


def compile_kernel() -> None:
    """Compile the event loop now (or load it from numba's on-disk cache), once per process.

    The first compile takes about three minutes on two cores (numba inlines the hot helpers
    into the loop: without that the loop runs five times slower); it is cached beside the
    source, so later processes load it in well under a second. Experiments call this before they start worker
    processes, so workers load the cache instead of each compiling it at once. The step-wise
    controls (a quota, a rate, a client count changed mid-run) are compiled here too.
    """
    global _compiled
    if _compiled:
        return
    from virtsim.sim.stations import GroupSpec

    cpu = StationSpec("cpu", "shared", 1.0, {("g",): GroupSpec(threads=1, quota_s=0.05, period_s=0.1)})
    work = lambda seed: lambda n: np.full((n, 1), 1e-3)  # noqa: E731
    sources = [Source("s", (Slot("cpu", "l", ("g",)),), ClosedArrivals(1), work),
               Source("o", (Slot("cpu", "l", ("h",)),), OpenArrivals(100.0), work)]
    run = KernelRun([cpu], sources, RunControl(duration_s=0.02))
    run.step(0.01)
    run.set_quota("cpu", ("g",), 0.08, 0.1)
    run.set_rate("o", 50.0)
    run.set_clients("s", 1)
    run.step(0.02)
    _compiled = True
