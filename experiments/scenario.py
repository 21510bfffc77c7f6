"""Scenario files: TOML validated into one typed model that owns every default.

A scenario names the run controls, the host, and the guests with their stacks and workloads. It
may also ask to compare stacks: the same guests and workload run once per listed stack, on
common random numbers. Every error names the field (``guests[0].stack[1]``) and what to write.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from virtsim.experiments.inputs import InputError, format_validation_error, load_toml_model
from virtsim.models.hardware.host import HostSpec
from virtsim.models.quantities import Bytes, Seconds, value_from_text
from virtsim.models.schema import StrictModel
from virtsim.models.system import Guest, System
from virtsim.models.virt.baremetal import BareMetal
from virtsim.models.virt.base import Layer
from virtsim.models.virt.stack import LayerEntry, Stack, layer_of, override_fields
from virtsim.models.workloads.catalog import WorkloadSpec
from virtsim.models.workloads.request import BatchSpec, ClosedSpec, MemDemand, OpenSpec, RequestWorkload
from virtsim.sim.control import MAX_RECORD_BYTES, RunControl
from virtsim.sim.load import closed_loop_requests
from virtsim.sim.routes import NoProgressError, Source, StationSpec, check_progress
from virtsim.sim.vector import vector_rejects

__all__ = [
    "GuestSpec",
    "PackingSpec",
    "RunSpec",
    "Scenario",
    "ScenarioError",
    "WorkloadValue",
    "format_validation_error",
    "load_scenario",
    "parse_scenario",
    "parse_stack",
    "split_outside",
    "stack_from_text",
    "stacks_from_text",
    "workload_of",
]


class ScenarioError(InputError):
    """A scenario that cannot be read or is invalid; the message is meant for the user."""


class RunSpec(StrictModel):
    """Run controls: simulated ``duration``, ``warmup`` left out of statistics, replications, seed.

    ``engine``: ``des`` (SimPy: the reference), ``kernel`` (the same model compiled with numba:
    the same numbers, about 80 times faster), ``vector`` (numpy; open arrivals through FIFO and delay
    stations only), or ``auto``: the vector engine wherever it can run the scenario, else the kernel.
    """

    duration_s: Seconds = Field(10.0, alias="duration", gt=0)
    warmup_s: Seconds = Field(1.0, alias="warmup")
    replications: int = Field(5, ge=1, le=10_000)
    seed: int = Field(1, ge=0)
    engine: Literal["des", "kernel", "vector", "auto"] = "auto"
    latency_cdf: bool = False  # also record latency quantiles (for CDF plots)
    # also record latency over every guest's requests together (guest "all-guests"): the
    # percentiles of identical guests from all their samples, not the noisiest guest's
    pooled_latency: bool = False
    # judge latency over the requests that arrived at least this long before the end, counting
    # one still unfinished with the time it has waited (sim.records.request_metrics): a short
    # run then cannot hide latencies longer than what is left of it. 0: over the requests that
    # finished (a run long against its latencies)
    latency_horizon_s: Seconds = Field(0.0, alias="latency_horizon", ge=0)

    @model_validator(mode="after")
    def _warmup_inside(self) -> RunSpec:
        """Refuse a ``warmup`` not shorter than ``duration``, and a ``latency_horizon`` that
        leaves no time to measure (raises ``ValueError``)."""
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup ({self.warmup_s} s) must be shorter than duration ({self.duration_s} s)")
        if self.latency_horizon_s >= self.duration_s - self.warmup_s:
            raise ValueError(f"latency_horizon ({self.latency_horizon_s:g} s) leaves no arrivals to measure in the "
                             f"window of {self.duration_s - self.warmup_s:g} s after warmup; lengthen duration or "
                             "shorten latency_horizon")
        return self

    def control(self) -> RunControl:
        """The engines' :class:`~virtsim.sim.control.RunControl` of these settings (times in s)."""
        return RunControl(self.duration_s, self.warmup_s, self.replications, self.seed)


def layer_from_entry(entry: LayerEntry) -> Layer:
    """Build a layer from ``"kvm"`` or ``{profile = "kvm", vcpus = 4}``; errors become one line (ValueError)."""
    try:
        return layer_of(entry)
    except ValidationError as exc:
        profile = entry if isinstance(entry, str) else entry.get("profile")
        raise ValueError(f"profile {profile!r}: {format_validation_error(exc, '; ')}") from None


def parse_stack(value: Any) -> Stack:
    """A :class:`Stack` from a file's list of entries (or a Stack, as it is): at least one layer,
    each one built, bare metal only alone; ``ValueError`` (one line) otherwise."""
    if isinstance(value, Stack):
        return value
    if not isinstance(value, list | tuple):
        raise ValueError(f'a stack is a list of layers, innermost first, like ["docker", "kvm"]; got {value!r}')
    for entry in value:
        if not isinstance(entry, str | dict):
            raise ValueError(f'a layer is a profile name or a table {{profile = "NAME", ...}}; got {entry!r}')
    return _stack_of(tuple(layer_from_entry(entry) for entry in value))


def _stack_of(layers: tuple[Layer, ...]) -> Stack:
    """The stack of these layers: at least one, bare metal only alone (``ValueError`` otherwise)."""
    if not layers:
        raise ValueError('a stack needs at least one layer; write ["bare-metal"] for no virtualization')
    if len(layers) > 1 and any(isinstance(layer, BareMetal) for layer in layers):
        raise ValueError('"bare-metal" means no virtualization layer: it is a stack of its own, never a '
                         "layer among others; remove it (the host is always there)")
    return Stack(layers)


_CLOSING = {"{": "}", "[": "]"}


def split_outside(text: str, separator: str) -> list[str]:
    """``text`` split at each ``separator`` that is outside every ``{...}`` and ``[...]``:
    ``docker{cpu_max=50ms/100ms}/kvm`` at ``/`` is ``docker{cpu_max=50ms/100ms}`` and ``kvm``
    (a "/" inside an override is no layer boundary, a "," inside a list no override boundary).
    ``ValueError`` naming ``text`` if its braces and brackets do not pair up."""
    parts: list[str] = []
    open_: list[str] = []  # the closing character each brace or bracket still open awaits
    current = ""
    for i, ch in enumerate(text):
        if ch in _CLOSING:
            open_.append(_CLOSING[ch])
        elif ch in _CLOSING.values() and (not open_ or open_.pop() != ch):
            raise ValueError(f"{text!r}: {ch!r} at character {i + 1} closes nothing opened before it; write "
                             "overrides as NAME{key=value,...} and a list as [a,b]")
        if ch == separator and not open_:
            parts.append(current)
            current = ""
        else:
            current += ch
    if open_:
        raise ValueError(f"{text!r}: a brace or bracket is never closed; add the {open_[-1]!r} it lacks")
    parts.append(current)
    return parts


def _layer_from_text(text: str) -> Layer:
    """One layer written as a label writes it, ``kvm`` or ``kvm{halt_poll=0s,vcpus=4}`` (each
    key as a file writes it, each value as :func:`~virtsim.models.quantities.value_from_text`
    reads it); ``ValueError`` (one line) saying what is wrong and what to write (the caller
    names the layer)."""
    name, brace, rest = (part.strip() for part in text.partition("{"))
    if not name:
        raise ValueError("a layer is a profile name (`virtsim profiles` lists them), with any overrides in "
                         "braces after it: kvm{vcpus=4}")
    if not brace:
        return layer_from_entry(name)
    if not rest.endswith("}"):
        raise ValueError("nothing may follow the overrides' closing brace; write NAME{key=value,...}")
    fields = override_fields(name)
    overrides: dict[str, Any] = {}
    for item in split_outside(rest[:-1], ","):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not (key and equals and value):
            raise ValueError(f"{item.strip()!r} is not key=value; write each override as key=value, separated "
                             "by commas")
        if key not in fields:
            raise ValueError(f"profile {name!r} has no parameter {key!r}; its parameters are "
                             f"{', '.join(sorted(fields))}")
        if key in overrides:
            raise ValueError(f"{key} is given more than once; give it once")
        overrides[key] = value_from_text(key, fields[key], value)
    return layer_from_entry({"profile": name, **overrides})


def stack_from_text(text: str) -> Stack:
    """The :class:`Stack` a text writes as :attr:`Stack.label` does: its layers innermost first,
    joined by ``/``, each a profile name with any overrides in braces, like
    ``docker{cpu_max=50ms/100ms,cpuset=[0,1]}/kvm{vcpus=4}``; ``stack_from_text(s.label) == s``
    for every stack. ``ValueError`` (one line) naming the layer that is wrong and what to write:
    an unknown profile or key, braces that do not pair up, a value its field refuses."""
    if not text.strip():
        raise ValueError("a stack needs at least one layer; write bare-metal for no virtualization")
    layers = []
    for part in split_outside(text, "/"):
        if not part.strip():
            raise ValueError(f"{text!r}: a layer is missing before or after a \"/\"; name a profile there "
                             "(`virtsim profiles` lists them)")
        try:
            layers.append(_layer_from_text(part))
        except ValueError as exc:
            raise ValueError(f"{part.strip()!r}: {exc}") from None
    try:
        return _stack_of(tuple(layers))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def stacks_from_text(text: str) -> list[Stack]:
    """The stacks of a comma-separated list, ``kvm,docker{cpu_max=50ms/100ms,cpuset=[0,1]}/kvm``
    (a comma inside braces or brackets separates no stacks), each read by :func:`stack_from_text`."""
    return [stack_from_text(part) for part in split_outside(text, ",")]


StackValue = Annotated[Stack, PlainValidator(parse_stack), PlainSerializer(lambda s: s.entries(), return_type=list)]
"""A stack in a validated model: written in a file as its layers, innermost first, and held as
one :class:`Stack` (built and checked once); saved back as its entries."""


WRITTEN_SEPARATOR = " + "
"""Joins the guests' stack labels into the label of a scenario run as written (no [compare])."""


def label_profiles(label: str) -> list[str]:
    """The profile names in a :attr:`Stack.label` read back from a results file:
    ``docker{cpu_max=50ms/100ms}/kvm`` gives ``["docker", "kvm"]`` (split as
    :func:`stack_from_text` splits it); a scenario's label, ``kvm + docker``, each stack's in
    turn. Names only, not checked against the profiles: a report or a grade of an older folder
    names a profile since renamed as unknown rather than failing. ``ValueError`` for braces that
    do not pair up."""
    return [layer.partition("{")[0].strip() for part in label.split(WRITTEN_SEPARATOR)
            for layer in split_outside(part, "/") if layer.strip()]


def unique_stacks(stacks: list[Stack]) -> list[Stack]:
    """``stacks`` if no two have the same label, else a ValueError naming the repeated ones."""
    labels = [s.label for s in stacks]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"stacks {repeated} are listed more than once; list each stack once")
    return stacks


UniqueStacks = Annotated[list[StackValue], AfterValidator(unique_stacks)]
"""Stacks to compare side by side: each checked, no two with the same label."""


def one_layer_stacks(*profiles: str) -> list[Stack]:
    """``[Stack(kvm), Stack(docker)]`` from ``"kvm", "docker"``: a default list of stacks."""
    return [Stack.of([p]) for p in profiles]


class PackingSpec(StrictModel):
    """What density and plan share, with one set of defaults: the stacks to compare (a VM, a
    microVM and a container), the memory each host keeps for itself (bytes), the requests
    behind each simulated p99 (``slo_samples``) and the random seed."""

    stacks: UniqueStacks = Field(default_factory=lambda: one_layer_stacks("kvm", "firecracker", "docker"),
                                 min_length=1)
    host_reserved_bytes: Bytes = Field(2 * 2**30, alias="host_reserved")
    # 2,000 requests leave about 20 beyond the p99
    slo_samples: int = Field(2000, ge=100, le=1_000_000)
    seed: int = Field(1, ge=0)


def _generic_by_default(value: Any) -> Any:
    """A workload table without ``kind`` is a generic request workload (``kind = "request"``)."""
    if isinstance(value, dict) and "kind" not in value:
        return {**value, "kind": "request"}
    return value


WorkloadValue = Annotated[WorkloadSpec, BeforeValidator(_generic_by_default)]
"""A workload in a validated model: a named benchmark (``kind = "fio"``, ...) or, with ``kind``
left out, a generic request workload."""


def workload_of(value: Any) -> WorkloadSpec:
    """A validated workload from its table (``{"kind": "web", "rate": "50/s"}``), or as it is;
    pydantic's ``ValidationError`` otherwise."""
    return _WORKLOAD.validate_python(value)


_WORKLOAD: TypeAdapter[WorkloadSpec] = TypeAdapter(WorkloadValue)


class GuestSpec(StrictModel):
    """One guest (or ``count`` identical ones, named NAME-1..NAME-N).

    ``name``: letters, digits, ``_``, ``.`` and ``-``; ``stack``: its layers, innermost first (a
    profile name or ``{profile = "kvm", ...overrides}`` each; default bare metal); ``workload``: a
    named benchmark (``kind = "fio"``, ...) or a generic request workload (``kind`` left out).
    """

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    count: int = Field(1, ge=1, le=100_000)
    stack: StackValue = Field(default_factory=lambda: Stack.of(["bare-metal"]))
    workload: WorkloadValue

    def build_stack(self, override: Stack | None = None, vm_vcpus: int | None = None) -> Stack:
        """The guest's stack (or ``override``); with ``vm_vcpus``, sized as
        :meth:`Stack.with_vm_vcpus` sizes it."""
        stack = override if override is not None else self.stack
        return stack if vm_vcpus is None else stack.with_vm_vcpus(vm_vcpus)

    def names(self) -> list[str]:
        """The guests' names: ``name``, or ``name-1`` .. ``name-N`` for ``count = N``."""
        return [self.name] if self.count == 1 else [f"{self.name}-{i + 1}" for i in range(self.count)]


class CompareSpec(StrictModel):
    """Run the scenario once per stack in ``stacks``, replacing every guest's stack.

    ``cores``: how the comparison keeps the machine the same size for every stack.
    ``"vm-sized-to-host"`` (the default) gives the outermost VM layer of a compared stack as many
    vCPUs as the host has hardware threads (cores x SMT threads per core), and each VM nested in
    it as many as the VM around it, unless the stack sets ``vcpus`` itself, so a VM is not
    compared with a bare metal of more CPUs; ``"as-written"`` takes the profiles' sizes.
    """

    stacks: UniqueStacks = Field(min_length=1)
    cores: Literal["vm-sized-to-host", "as-written"] = "vm-sized-to-host"


class SweepSpec(StrictModel):
    """The ``[sweep]`` table of a scenario (expanded and checked point by point by ``experiments.sweep``).

    ``parameters``: a list of values per field path (``"guests[0].workload.rate"``); ``mode``:
    ``"grid"`` runs every combination, ``"zip"`` the i-th value of every list together.
    """

    mode: Literal["grid", "zip"] = "grid"
    parameters: dict[str, list[Any]]


POOLED_GUEST = "all-guests"
"""The guest column of rows computed over every guest's requests together (run.pooled_latency)."""


def pooled_name(entry: str) -> str:
    """The guest column of rows pooled over the guests of one ``[[guests]]`` entry (``web:all``;
    a guest's own name cannot hold ``:``). Written when a scenario with run.pooled_latency has
    several entries."""
    return f"{entry}:all"

MAX_OPEN_REQUESTS = 20_000_000
"""Open-loop requests per replication a scenario may ask for: about ten minutes of SimPy at the
engine's ~40,000 requests per second on a loaded core."""


def numa_placements(workloads: list[RequestWorkload], nodes: int) -> dict[int, tuple[int, int]]:
    """The NUMA placements of the workloads' sequential memory traffic: per number of nodes it is
    bound to (``nodes`` for interleaved), the first (workload, demand) streaming so; raises
    ``ValueError`` for any memory demand bound to more nodes than the host has."""
    placements: dict[int, tuple[int, int]] = {}
    for i, w in enumerate(workloads):
        for j, demand in enumerate(w.demands):
            if not isinstance(demand, MemDemand):
                continue
            wanted = nodes if demand.numa_nodes is None else demand.numa_nodes
            if wanted > nodes:  # random access too (review 35 F8: it was accepted)
                raise ValueError(f"guests[{i}].workload: demand {j} binds memory to {wanted} NUMA nodes, but the "
                                 f"host's memory has {nodes}; lower numa_nodes or pick a memory profile with "
                                 "more nodes")
            if demand.pattern == "seq":
                placements.setdefault(wanted, (i, j))
    return placements


def check_numa_placement(workloads: list[RequestWorkload], nodes: int) -> None:
    """Every memory demand bound to nodes the host has, and all sequential traffic bound alike
    (bound and interleaved traffic sharing controllers is not modelled)."""
    placements = numa_placements(workloads, nodes)
    if len(placements) > 1:
        where = ", ".join(f"guests[{i}] demand {j}" for i, j in placements.values())
        raise ValueError(f"memory traffic bound to {sorted(placements)} NUMA nodes on one host ({where}): "
                         "bound and interleaved traffic sharing controllers is not modelled; bind every "
                         "guest's memory to the same number of nodes, or run them as separate scenarios")


class Scenario(StrictModel):
    """A whole scenario file.

    ``name`` and ``description`` label the results; ``run``: :class:`RunSpec`; ``host``: the
    host's parts (:class:`~virtsim.models.hardware.host.HostSpec`); ``guests``: one or more
    :class:`GuestSpec`; ``compare``: run once per stack (:class:`CompareSpec`); ``sweep``: run at
    every point of a grid (:class:`SweepSpec`).
    """

    name: str = "scenario"
    description: str = ""
    run: RunSpec = Field(default_factory=RunSpec)
    host: HostSpec = Field(default_factory=HostSpec)
    guests: list[GuestSpec] = Field(min_length=1)
    compare: CompareSpec | None = None
    sweep: SweepSpec | None = None  # each point is expanded and validated by experiments.sweep

    @model_validator(mode="after")
    def _workloads_fit_the_run(self) -> Scenario:
        """Each guest's requests as the engine will see them (:meth:`check_run_fits`)."""
        self.check_run_fits()
        return self

    def check_run_fits(self) -> None:
        """Raise ``ValueError`` unless each guest's requests fit the run as the engine will see
        them: batches inside the run, open-loop requests a run can finish, NUMA placements the
        host has and does not mix."""
        workloads = [spec.workload.request_workload() for spec in self.guests]
        for i, w in enumerate(workloads):
            if isinstance(w.arrivals, BatchSpec) and w.arrivals.at_s >= self.run.duration_s:
                raise ValueError(f"guests[{i}]: its batch arrives at {w.arrivals.at_s:g} s, not before run.duration "
                                 f"= {self.run.duration_s:g} s ends: nothing would be measured")
            if isinstance(w.arrivals, BatchSpec) and w.arrivals.at_s < self.run.warmup_s:
                raise ValueError(f"guests[{i}]: its batch arrives at {w.arrivals.at_s:g} s, inside run.warmup = "
                                 f"{self.run.warmup_s:g} s, whose requests are not measured: set the batch's "
                                 f"at >= {self.run.warmup_s:g} s or run.warmup = \"0s\"")
        offered = sum(spec.count * w.arrivals.rate_per_s for spec, w in zip(self.guests, workloads, strict=True)
                      if isinstance(w.arrivals, OpenSpec))
        if offered * self.run.duration_s > MAX_OPEN_REQUESTS:
            raise ValueError(
                f"open arrivals of {offered:.4g}/s over run.duration = {self.run.duration_s:g} s make "
                f"{offered * self.run.duration_s:.3g} requests per replication, more than the "
                f"{MAX_OPEN_REQUESTS:,} an event-by-event run finishes in reasonable time; shorten "
                "run.duration (a steady state takes seconds) or lower the rate")
        check_numa_placement(workloads, self.host.memory.nodes)

    def with_run_length(self, duration_s: float, warmup_s: float) -> Scenario:
        """This scenario run for ``duration_s`` seconds with the first ``warmup_s`` left out,
        checked as a file's run would be (:class:`ScenarioError` otherwise); the host and guests
        are kept as validated, not built again (density and plan size their runs this way)."""
        try:
            sized = self.model_copy(update={"run": self.run.revalidated(duration_s=duration_s, warmup_s=warmup_s)})
            sized.check_run_fits()
        except (ValidationError, ValueError) as exc:
            detail = format_validation_error(exc, "; ") if isinstance(exc, ValidationError) else str(exc)
            raise ScenarioError(f"{self.name}: a run of {duration_s:g} s: {detail}") from None
        return sized

    def check_measurable(self) -> None:
        """Raise :class:`ScenarioError` if an open-loop guest expects less than one request in the
        measured window (``rate x (duration - warmup)``): a run would report zero throughput and no
        latency, with nothing wrong to see (``rate = "1/min"`` for a 10 s run, a slip for "1/s").
        Experiments that size their own runs from the rate (density, plan) do not call this."""
        window = self.run.duration_s - self.run.warmup_s
        for i, spec in enumerate(self.guests):
            arrivals = spec.workload.request_workload().arrivals
            if isinstance(arrivals, OpenSpec) and arrivals.rate_per_s * window < 1.0:
                raise ScenarioError(
                    f"guests[{i}]: an open-loop rate of {arrivals.rate_per_s:.4g}/s expects "
                    f"{arrivals.rate_per_s * window:.3g} requests in the {window:g} s measured (run.duration less "
                    f"run.warmup): nothing would be measured; raise the rate or run.duration")

    @model_validator(mode="after")
    def _guest_names(self) -> Scenario:
        """Refuse guest names that repeat or are reserved (``host``, ``all-guests``) (raises ``ValueError``)."""
        names = [n for spec in self.guests for n in spec.names()]
        for reserved in ("host", POOLED_GUEST):
            if reserved in names:
                raise ValueError(f"a guest may not be named {reserved!r}: results name their own rows so")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"guest name {repeated[0]!r} is used more than once (a guest with count = N is named "
                             "NAME-1..NAME-N); give each guest a unique name")
        return self

    @model_validator(mode="after")
    def _buildable(self) -> Scenario:
        """Build every variant's system (and check the vector engine can run it, if asked); raises ``ValueError``."""
        for label, stack_override in self.variants():
            where = f" (comparing stack {label})" if self.compare else ""
            try:
                system = self.system(stack_override)
            except ValueError as exc:
                raise ValueError(f"{exc}{where}") from None
            arrivals = [spec.workload.request_workload().arrivals for spec in self.guests]
            if any(isinstance(a, ClosedSpec) for a in arrivals):
                firsts = {spec.names()[0] for spec in self.guests}  # guests of one entry draw alike
                stations, sources = System(system.host, tuple(g for g in system.guests if g.name in firsts)
                                           ).engine_inputs()
                try:
                    check_progress(sources)
                except NoProgressError as exc:
                    index = next(i for i, spec in enumerate(self.guests) if exc.source in spec.names())
                    raise ValueError(f"guests[{index}].workload: {exc}{where}") from None
                self._check_request_bound(stations, sources, where)
            if self.run.engine == "vector":
                reason = vector_rejects(*system.engine_inputs())
                if reason is not None:
                    raise ValueError(f"run.engine = \"vector\" cannot run this scenario{where}: {reason}; "
                                     "use \"kernel\", \"des\" or \"auto\"")
        return self

    def _check_request_bound(self, stations: list[StationSpec], sources: list[Source], where: str) -> None:
        """Refuse a closed loop that would keep more request records than a run may
        (:data:`~virtsim.sim.control.MAX_RECORD_BYTES`) by a wide margin, before it runs for
        minutes: clients whose requests take next to no time (``cycles = "1"`` for ``"1M"``)
        make billions of requests a simulated second (review 26)."""
        bound = closed_loop_requests(stations, sources, self.run.duration_s)
        for source in sources:
            requests = bound.get(source.name, 0.0)
            per_request = 8 * (12 + len(source.route))  # as the engines keep each request's record
            if requests * per_request > 4 * MAX_RECORD_BYTES:
                index = next(i for i, spec in enumerate(self.guests) if source.name in spec.names())
                raise ValueError(
                    f"guests[{index}].workload: its closed loop would make up to {requests:.3g} requests in "
                    f"{self.run.duration_s:g} s (its clients, think time and work per request allow "
                    f"{requests / self.run.duration_s:.3g}/s), more records than the "
                    f"{MAX_RECORD_BYTES / 2**30:g} GiB a run may keep; check the work's number and unit "
                    f"(cycles = \"1\" is one cycle), or shorten run.duration{where}")

    def variants(self) -> list[tuple[str, Stack | None]]:
        """(label, stack override) per run variant: one per compared stack, or the scenario as
        is, labelled by its guests' stacks (``kvm + docker{cpu_max=50ms/100ms}``, each once, in
        guest order), so results and reports name what ran (review 30 F4: "as-written")."""
        if self.compare is None:
            return [(WRITTEN_SEPARATOR.join(dict.fromkeys(spec.build_stack().label for spec in self.guests)), None)]
        return [(stack.label, stack) for stack in self.compare.stacks]

    def system(self, stack_override: Stack | None = None) -> System:
        """The host and guests of one variant."""
        guests = []
        sized = self.compare is not None and self.compare.cores == "vm-sized-to-host" and stack_override is not None
        for spec in self.guests:
            # as many vCPUs as the host has hardware threads: bare metal and containers schedule on
            # every SMT sibling, so a VM of one vCPU per core would be a smaller machine
            threads = self.host.cpu.cores * self.host.cpu.threads_per_core
            stack = spec.build_stack(stack_override, threads if sized else None)
            guests += [Guest(name, stack, spec.workload.request_workload()) for name in spec.names()]
        return System(self.host, tuple(guests))


def stack_label(stack: Stack | list[LayerEntry]) -> str:
    """The one label of a stack (:attr:`Stack.label`), also of a stack as a file writes it."""
    return parse_stack(stack).label


def parse_scenario(data: dict[str, Any], origin: str = "scenario") -> Scenario:
    """Validate a scenario from a dict (as read from TOML)."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{origin} is invalid:\n{format_validation_error(exc)}") from None


DEFAULT_SCENARIO = "compare-stacks.toml"


def default_scenario() -> Path:
    """The built-in scenario ``virtsim run`` runs when given none."""
    return Path(str(resources.files("virtsim.experiments") / "scenarios" / DEFAULT_SCENARIO))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a TOML scenario file (:class:`ScenarioError` naming the problem)."""
    try:
        return load_toml_model(path, Scenario, "scenario file")
    except InputError as exc:
        raise ScenarioError(str(exc)) from None
