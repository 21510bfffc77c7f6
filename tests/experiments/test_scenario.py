"""Scenario files: valid ones build, invalid ones get one clear message naming the field."""

from __future__ import annotations

import pytest

from virtsim.experiments.scenario import ScenarioError, load_scenario, parse_scenario
from virtsim.models.virt.stack import Stack


def test_a_valid_scenario_builds_its_system(small) -> None:
    scenario = parse_scenario(small)
    system = scenario.system()
    assert [g.name for g in system.guests] == ["web", "batch-1", "batch-2"]
    assert scenario.run.duration_s == 0.5 and scenario.host.network.bandwidth_bps == pytest.approx(9.4e9)


def _error(data) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    return str(info.value)


def test_unknown_key_is_named(small) -> None:
    small["run"]["durration"] = "1s"
    assert "run.durration: unknown key" in _error(small)


def test_wrong_unit_is_named_with_the_accepted_units(small) -> None:
    small["run"]["duration"] = "10GB"
    message = _error(small)
    assert "run.duration" in message and "'GB' is not a unit of seconds" in message and "ms" in message


def test_negative_size_is_rejected(small) -> None:
    small["guests"][0]["workload"]["demands"][2]["size"] = "-4KiB"
    assert "guests[0].workload.request.demands[2].io.size: must be >= 0" in _error(small)


def test_unknown_profile_lists_the_known_ones(small) -> None:
    small["guests"][0]["stack"] = ["kvmm"]
    message = _error(small)
    assert "guests[0].stack" in message and "unknown profile 'kvmm'" in message and "firecracker" in message


def test_more_pinned_vcpus_than_cores_is_impossible(small) -> None:
    small["guests"][0]["stack"] = [{"profile": "kvm", "vcpus": 6, "pin": [0, 1, 2, 3, 4, 5]}]
    message = _error(small)
    assert "guest 'web', layer 'kvm'" in message and "do not exist" in message and "0..3" in message


def test_two_vcpus_pinned_to_one_core_twice_are_refused(small) -> None:
    """Review 7 C2: pin = [0, 0] for 2 vCPUs passed the count check (two entries) and ran both
    vCPUs on one core; pin names one core per vCPU, so it is refused."""
    small["guests"][0]["stack"] = [{"profile": "kvm", "vcpus": 2, "pin": [0, 0]}]
    assert "pinned to 1 distinct cores ([0, 0]), which hold 1 hardware threads" in _error(small)
    small["guests"][0]["stack"] = [{"profile": "kvm", "vcpus": 2, "pin": [0, 1]}]
    parse_scenario(small)


def test_layer_override_errors_name_the_parameter(small) -> None:
    small["guests"][1]["stack"] = [{"profile": "docker", "cpu_max": "lots"}]
    message = _error(small)
    assert "guests[1].stack" in message and "cpu_max" in message and "50ms/100ms" in message
    small["guests"][1]["stack"] = [{"profile": "docker", "cpu_weigth": 5}]
    assert "cpu_weigth: unknown key" in _error(small)


def test_warmup_must_be_shorter_than_duration(small) -> None:
    small["run"]["warmup"] = "1s"
    assert "warmup" in _error(small) and "shorter than duration" in _error(small)


def test_bad_toml_and_missing_file(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nduration = 1\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")


def test_shipped_scenarios_are_valid() -> None:
    """Every shipped file validates as what it is: a disk spec, a plan, or a run scenario."""
    import tomllib
    from pathlib import Path

    from virtsim.experiments.disk import load_disk_spec
    from virtsim.experiments.plan import load_plan

    folder = Path(__file__).resolve().parents[2] / "experiments" / "scenarios"
    files = sorted(folder.glob("*.toml"))
    assert len(files) >= 2
    for path in files:
        data = tomllib.loads(path.read_text())
        if "disk" in data:
            load_disk_spec(path)
        elif "services" in data:
            load_plan(path)
        else:
            load_scenario(path)


def test_a_scenario_run_as_written_is_labelled_by_its_guests_stacks(small) -> None:
    """Review 30 F4: without [compare] every row said "as-written", so a report of two runs, or
    of two guests on different stacks, could not say which stack ran."""
    from virtsim.experiments.scenario import label_profiles

    small.pop("compare", None)
    small["guests"][0]["stack"] = [{"profile": "docker", "cpu_max": "50ms/100ms"}]
    small["guests"][1]["stack"] = ["docker", "kvm"]
    (label, override), = parse_scenario(small).variants()
    assert label == "docker{cpu_max=50ms/100ms} + docker/kvm" and override is None
    assert label_profiles(label) == ["docker", "docker", "kvm"]
    small["guests"][1]["stack"] = small["guests"][0]["stack"]
    assert parse_scenario(small).variants()[0][0] == "docker{cpu_max=50ms/100ms}"  # each stack once


def test_compared_stacks_are_labelled_with_their_overrides_and_not_repeated(small) -> None:
    small["compare"] = {"stacks": [["docker"], [{"profile": "docker", "cpu_max": "50ms/100ms"}]]}
    labels = [label for label, _ in parse_scenario(small).variants()]
    assert labels == ["docker", "docker{cpu_max=50ms/100ms}"]
    small["compare"] = {"stacks": [["kvm"], ["kvm"]]}
    assert "listed more than once" in _error(small)
    small["compare"] = {"stacks": [[{"profile": "kvm", "vcpus": 2, "pin": [0, 1]}],
                                   [{"pin": [0, 1], "profile": "kvm", "vcpus": 2}]]}
    assert "listed more than once" in _error(small)  # one stack, written twice in two orders


@pytest.mark.parametrize(("path", "value"), [
    (("guests", 0, "workload", "demands", 1, "cycles"), float("nan")),  # TOML nan: ran as zero CPU work
    (("guests", 0, "workload", "demands", 1, "cycles"), "nan"),
    (("guests", 0, "workload", "demands", 2, "size"), "1e400GB"),  # overflows to inf
    (("guests", 0, "workload", "arrivals", "rate"), float("inf")),
    (("run", "duration"), float("inf")),
])
def test_nan_and_infinity_are_refused_with_the_field_named(small, path, value) -> None:
    node = small
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    message = _error(small)
    assert ("finite" in message or "not a number" in message) and path[-1] in message


def test_a_plain_float_field_refuses_nan_too(small) -> None:
    small["guests"][0]["stack"] = [{"profile": "kvm", "identical_fraction": float("nan")}]
    assert "identical_fraction" in _error(small)


@pytest.mark.parametrize(("path", "value", "needle"), [
    # found by the fuzz test: accepted, then 1e308 B x 8 bits overflowed to infinity in the model
    (("guests", 0, "workload", "demands", 3, "size"), 1e308, "beyond 1 EiB"),
    (("guests", 0, "workload", "arrivals", "rate"), 1e308, "beyond 1e9/s"),
    (("guests", 0, "workload", "demands", 1, "cycles"), "1e16", "beyond 1e15 cycles"),
    (("run", "duration"), "2e6s", "beyond 1e6 s"),
])
def test_physically_impossible_quantities_are_refused(small, path, value, needle) -> None:
    node = small
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    message = _error(small)
    assert needle in message and str(path[-1]) in message


def test_more_open_requests_than_a_run_can_finish_are_refused_before_running(small) -> None:
    small["guests"][0]["workload"]["arrivals"]["rate"] = "1e8/s"  # 5e7 requests in 0.5 s
    message = _error(small)
    assert "requests per replication" in message and "run.duration" in message


@pytest.mark.parametrize("where", ["guest", "compare"])
def test_an_empty_stack_is_refused_not_read_as_bare_metal(small, where) -> None:
    if where == "guest":
        small["guests"][0]["stack"] = []
    else:
        small["compare"] = {"stacks": [[], ["kvm"]]}
    assert 'a stack needs at least one layer; write ["bare-metal"]' in _error(small)


def test_true_is_not_read_as_one(small) -> None:
    """Found by the fuzz test: pydantic's lax mode ran replications = true as one replication."""
    small["run"]["replications"] = True
    assert "replications: true is not a number" in _error(small)


def test_a_stack_has_one_label_that_keeps_its_overrides() -> None:
    from virtsim.experiments.scenario import label_profiles, stack_label

    plain, limited = ["docker"], [{"profile": "docker", "cpu_max": "50ms/100ms"}, "kvm"]
    assert stack_label(plain) == "docker"
    assert stack_label(limited) == "docker{cpu_max=50ms/100ms}/kvm"
    assert label_profiles(stack_label(limited)) == ["docker", "kvm"]  # the "/" inside braces is no boundary
    one = [{"profile": "kvm", "vcpus": 4, "halt_poll": "0us"}]
    other = [{"halt_poll": 0, "profile": "kvm", "vcpus": 4}]  # the same stack in another order and unit
    assert stack_label(one) == stack_label(other) == "kvm{halt_poll=0s,vcpus=4}"
    # the same limit in three spellings (the kernel's own "QUOTA PERIOD" is in microseconds)
    spellings = ["50ms/100ms", "0.05s/0.1s", "50000 100000"]
    assert {stack_label([{"profile": "docker", "cpu_max": c}]) for c in spellings} == {"docker{cpu_max=50ms/100ms}"}
    assert stack_label([{"profile": "kvm", "halt_poll": 5e-5}]) == "kvm{halt_poll=50us}"


def test_a_stack_is_one_value_that_a_file_writes_back_as_it_reads() -> None:
    """The validated scenario holds a Stack; dumped, it is entries that validate to an equal stack
    with equal parameters; stacks that differ only by an override differ."""
    from virtsim.experiments.scenario import parse_scenario


    data = {"name": "s", "guests": [{"name": "g", "workload": {"kind": "kv-store"},
                                     "stack": [{"profile": "docker", "memory_max": "1.5GiB", "cpu_max": "0.02s/0.1s"},
                                               {"profile": "kvm", "vcpus": 3, "halt_poll": "12.5us"}]}]}
    scenario = parse_scenario(data)
    stack = scenario.guests[0].stack
    assert isinstance(stack, Stack)
    assert stack.label == "docker{cpu_max=20ms/100ms,memory_max=1.5GiB}/kvm{halt_poll=12.5us,vcpus=3}"
    dumped = scenario.model_dump(mode="json", by_alias=True)
    # the numbers themselves (base units), so a file written and read again gives the same numbers
    assert dumped["guests"][0]["stack"] == [{"profile": "docker", "cpu_max": "20ms/100ms", "memory_max": 1.5 * 2**30},
                                            {"profile": "kvm", "halt_poll": 12.5 * 1e-6, "vcpus": 3}]  # "12.5us"
    again = parse_scenario(dumped).guests[0].stack
    assert again == stack and again.layers[1].params == stack.layers[1].params
    assert Stack.of(["docker"]) != Stack.of([{"profile": "docker", "cpu_weight": 200}])


def test_a_container_cpuset_names_the_cpus_of_the_vm_it_runs_in(small) -> None:
    """Inside a 2-vCPU guest only CPUs 0 and 1 exist (docker refuses "Requested CPUs are not
    available"); inside an 8-vCPU guest CPU 5 exists although the host has 4 cores."""
    small["guests"][0]["stack"] = [{"profile": "docker", "cpuset": [3]}, {"profile": "kvm", "vcpus": 2}]
    message = _error(small)
    assert "layer 'docker'" in message and "cpuset: CPUs [3] do not exist" in message and "0..1" in message
    small["guests"][0]["stack"] = [{"profile": "docker", "cpuset": [5]}, {"profile": "kvm", "vcpus": 8}]
    parse_scenario(small).system()  # accepted: vCPU 5 is there


def test_a_compared_vm_gets_the_hosts_hardware_threads(small) -> None:
    """Bare metal schedules on every SMT sibling (16 cores x 2 on xeon-e5-2665-2s): a compared VM
    of 16 vCPUs would be a smaller machine (a 20% "overhead" from its size alone)."""
    small["host"]["cpu"] = "xeon-e5-2665-2s"
    small["compare"] = {"stacks": [["bare-metal"], ["kvm"], [{"profile": "kvm", "vcpus": 4}]]}
    scenario = parse_scenario(small)
    (_, kvm), (_, kvm4) = scenario.variants()[1:]
    assert scenario.system(kvm).guests[0].stack.layers[0].params.vcpus == 32
    assert scenario.system(kvm4).guests[0].stack.layers[0].params.vcpus == 4  # a stack's own size stays


def test_bare_metal_is_a_stack_of_its_own(small) -> None:
    small["guests"][0]["stack"] = ["bare-metal", "kvm"]
    assert "never a layer among others" in _error(small)


def test_a_compared_nested_vm_is_as_big_as_the_vm_around_it(small) -> None:
    """Review 7 A1: compared stacks are sized to the host (its hardware threads); a VM nested in
    another got its profile's 2 vCPUs, so kvm/kvm measured a 2-vCPU machine against a 32-thread
    bare metal. Now the inner VM has as many as the outer (and as an outer VM set by hand)."""
    scenario = parse_scenario(small)
    threads = scenario.host.cpu.cores * scenario.host.cpu.threads_per_core
    spec = scenario.guests[0]

    def vcpus(stack) -> list[int]:
        return [layer.params.vcpus for layer in spec.build_stack(Stack.of(stack), threads).layers
                if hasattr(layer.params, "vcpus")]

    assert vcpus(["kvm", "kvm"]) == [threads, threads]
    assert vcpus(["docker", "kvm", "kvm"]) == [threads, threads]
    assert vcpus(["kvm", {"profile": "kvm", "vcpus": 4}]) == [4, 4]
    assert vcpus([{"profile": "kvm", "vcpus": 2}, "kvm"]) == [2, threads]


def test_a_closed_loop_that_would_make_billions_of_requests_is_refused_before_it_runs(small) -> None:
    """Review 26 #5: cycles = "1" (meant "1M") on a 3.1 GHz core: two clients make a request
    every 0.3 ns, 6e9 a simulated second; the run went on for minutes at 0%. The bound
    min(N / (Z + D), c / D) x duration is refused when its records would pass the budget
    four times over; 1M cycles (1.6e3 times fewer requests than the budget allows) runs."""
    small["host"]["cpu"] = {"profile": "xeon-e5-2665-2s", "threads_per_core": 1}
    small["guests"] = [{"name": "db", "stack": ["bare-metal"], "workload": {
        "arrivals": {"kind": "closed", "clients": 2, "think": "0s"}, "demands": [{"kind": "cpu", "cycles": "1"}]}}]
    message = _error(small)
    assert "guests[0].workload: its closed loop would make up to 3.1e+09 requests in 0.5 s" in message
    assert 'cycles = "1" is one cycle' in message
    small["guests"][0]["workload"]["demands"] = [{"kind": "cpu", "cycles": "1M"}]
    parse_scenario(small)


def test_a_closed_loop_that_never_lets_time_move_is_refused(small) -> None:
    """Review 7 B1: clients with no think time and requests with no work (zero cycles, a zero
    delay) make requests without end at one instant: the run filled 24 GB and was killed. Now
    the scenario is refused naming the guest's workload and the fix; a think time or some work
    makes it valid."""
    small["guests"] = [{"name": "a", "stack": ["bare-metal"], "workload": {
        "arrivals": {"kind": "closed", "clients": 4, "think": "0s"},
        "demands": [{"kind": "cpu", "cycles": 0}]}}]
    message = _error(small)
    assert "\nguests[0].workload: " in message and "think time" in message and "some work" in message
    small["guests"][0]["workload"]["demands"] = [{"kind": "delay", "duration": "0s"}]
    assert "without end" in _error(small)
    # review 13: a lock taken and given back around nothing is no work either (the run hung)
    small["guests"][0]["workload"]["demands"] = [{"kind": "lock", "name": "m", "action": "acquire"},
                                                 {"kind": "cpu", "cycles": 0},
                                                 {"kind": "lock", "name": "m", "action": "release"}]
    assert "without end" in _error(small)
    small["guests"][0]["workload"]["arrivals"]["think"] = "1ms"
    parse_scenario(small)
    small["guests"][0]["workload"]["arrivals"]["think"] = "0s"
    small["guests"][0]["workload"]["demands"] = [{"kind": "cpu", "cycles": 1000}]
    parse_scenario(small)


def test_a_vm_may_have_a_vcpu_per_hardware_thread_of_its_pinned_cores(small) -> None:
    """Review 26 #2: under SMT a pinned core holds two vCPUs (its two hardware threads), as a
    cpuset's cores do; the refusal names the threads and says where the vCPU count came from."""
    small["host"]["cpu"] = "xeon-e5-2665-2s"  # 16 cores of 2 threads
    small["guests"][0]["stack"] = [{"profile": "kvm", "vcpus": 4, "pin": [0, 1]}]
    parse_scenario(small).system()  # 4 vCPUs on 2 cores' 4 threads
    small["guests"][0]["stack"] = [{"profile": "kvm", "vcpus": 5, "pin": [0, 1]}]
    message = _error(small)
    assert "which hold 4 hardware threads" in message and "vcpus = 4 or fewer" in message


def test_a_cpu_clock_without_a_unit_is_refused_not_read_as_hertz(small) -> None:
    """Review 30: freq = 3 ran a 3 Hz CPU, with only an overload warning that named no field."""
    small["host"]["cpu"] = {"profile": "small-4c", "freq": 3}
    assert "host.cpu.freq: 3 Hz is not a CPU clock" in _error(small)


@pytest.mark.parametrize("kind", ["linpack", "stream", "randomaccess"])
def test_a_benchmarks_threads_beyond_the_engines_clients_name_threads(small, kind) -> None:
    """Review 35 F9: 1e8 threads were refused as arrivals.closed.clients, a field not written."""
    small["guests"][0]["workload"] = {"kind": kind, "threads": 100_000_000}
    message = _error(small)
    assert "threads" in message and "clients" not in message


@pytest.mark.parametrize("demand, needle", [
    ({"kind": "cpu", "cycles": "1M", "sigma": 2.0}, "sigma is the spread of dist = \"lognormal\""),
    ({"kind": "cpu", "cycles": "1M", "dist": "exp", "sigma": 2.0}, "with dist = 'exp' it means nothing"),
    ({"kind": "mem", "size": "8KiB", "pattern": "seq", "huge_pages": True}, "huge_pages changes only random"),
    ({"kind": "mem", "size": "8KiB", "pattern": "random", "numa_nodes": 64}, "binds memory to 64 NUMA nodes"),
])
def test_a_demand_field_that_would_change_nothing_is_refused(small, demand, needle) -> None:
    """Review 35 F8: accepted, and the results were those of the demand without the field."""
    small["guests"][0]["workload"]["demands"].append(demand)
    assert needle in _error(small)


def test_a_scenario_sized_again_is_checked_as_a_file_with_that_run_would_be(small) -> None:
    """Density and plan lengthen their runs without building the guests again: the new run is
    still refused where a file with it would be (a warm-up not shorter than the run, more open
    requests than a run finishes), and the scenario keeps its validated guests and host."""
    scenario = parse_scenario(small)
    longer = scenario.with_run_length(4.0, 0.4)
    assert (longer.run.duration_s, longer.run.warmup_s) == (4.0, 0.4) and longer.guests is scenario.guests
    assert scenario.run.duration_s == 0.5  # the original is left alone
    with pytest.raises(ScenarioError, match="warmup"):
        scenario.with_run_length(1.0, 1.0)
    with pytest.raises(ScenarioError, match="requests per replication"):  # 400/s for 1e5 s: 4e7
        scenario.with_run_length(1e5, 1.0)
    with pytest.raises(ScenarioError, match="beyond 1e6 s"):
        scenario.with_run_length(1e9, 1.0)


def test_a_revalidated_copy_checks_the_update_and_keeps_what_the_input_left_out(small) -> None:
    from pydantic import ValidationError

    run = parse_scenario(small).run
    with pytest.raises(ValidationError, match="warmup"):
        run.revalidated(warmup_s=run.duration_s)
    with pytest.raises(ValidationError, match="greater than 0"):
        run.revalidated(duration_s=-1.0)
    again = run.revalidated(duration_s=2.0)
    assert again.duration_s == 2.0 and again.model_fields_set == run.model_fields_set | {"duration_s"}


def test_an_override_by_its_field_name_or_its_key_is_the_same_layer() -> None:
    """The profile writes ``halt_poll``; an override may write the field's name, ``halt_poll_s``,
    too (it was refused as an unknown key, both names reaching the model); writing both is refused."""
    from virtsim.models.virt.stack import make_layer

    by_name, by_key = make_layer("kvm", {"halt_poll_s": 0}), make_layer("kvm", {"halt_poll": "0s"})
    assert by_name.params == by_key.params and by_name.label == by_key.label == "kvm{halt_poll=0s}"
    with pytest.raises(ValueError, match="overridden twice"):
        make_layer("kvm", {"halt_poll_s": 0, "halt_poll": "1us"})


@pytest.mark.parametrize("name", ["softirq", "peer", "driver-domain", "host"])
def test_a_guest_may_not_take_the_name_of_the_hosts_own_groups(small, name) -> None:
    """Review 39 F3: a guest named softirq took the client's receive threads (-34% kv-store
    throughput), one named peer shared a host-side load generator's weight, one named
    driver-domain Xen's dom0 (latency 0.1 ms -> 102 ms), in one order, and was refused in the
    other with a message about "another guest"."""
    small["guests"][0]["name"] = name
    assert f"may not be named {name!r}" in _error(small)


def test_clients_per_thread_without_closed_loop_clients_is_refused(small) -> None:
    """Review 39 F4: on an open loop it was accepted and made the server one FIFO thread."""
    small["guests"][0]["workload"]["clients_per_thread"] = 4
    assert "clients_per_thread groups closed-loop clients" in _error(small)
