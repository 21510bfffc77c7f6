"""A stack written as text (issue 14): every label reads back as the stack it labels, and bad
text is one line naming the layer and what to write."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from virtsim.experiments.scenario import label_profiles, parse_stack, stack_from_text, stacks_from_text
from virtsim.models.virt.stack import layer_profiles, make_layer, override_fields

_SECONDS = st.floats(0.0, 1e3)
_BYTES = st.floats(1.0, 2.0**50)
_CORES = st.lists(st.integers(0, 255), unique=True, max_size=4)
# Overrides of each kind a label writes (value_text): quantities of several dimensions with
# arbitrary digits, plain floats and ints, true/false, names (Literal), cpu_max's canonical
# "QUOTA/PERIOD" (a "/" inside braces), lists of cores (a "," inside brackets), and None.
_CONTAINER: dict[str, st.SearchStrategy[Any]] = {
    "cpu_max": st.one_of(st.just("max"), st.tuples(st.floats(1e-3, 4.0), st.floats(1e-3, 1.0)).map(
        lambda qp: f"{qp[0]!r}s/{qp[1]!r}s")),
    "cpuset": _CORES,
    "cpu_weight": st.floats(1.0, 10_000.0),
    "memory_max": st.one_of(st.none(), _BYTES),
    "io_max_iops": st.floats(1e-3, 1e7),
    "io_max_bps": st.floats(1.0, 1e12),
    "network": st.sampled_from(["host", "bridge", "nat"]),
    "boot": _SECONDS,
    "overlay_io_cycles": st.floats(0.0, 1e9),
}
_VM: dict[str, st.SearchStrategy[Any]] = {
    "vcpus": st.integers(1, 64),
    "pin": st.one_of(st.none(), _CORES),
    "halt_poll": _SECONDS,
    "apicv": st.booleans(),
    "io_path": st.sampled_from(["virtio", "emulated", "passthrough"]),
    "guest_memory": _BYTES,
    "exit_handler_cycles": st.floats(0.0, 1e9),
    "kick_exits": st.floats(0.0, 100.0),
}
_FIELDS = {"container": _CONTAINER, "type1": _VM, "type2": {**_VM, "host_cache_hit_ratio": st.floats(0.0, 1.0),
                                                            "user_nat": _SECONDS}}
_PROFILES = {name: p.kind for name, p in layer_profiles().items() if p.kind != "bare-metal"}


@st.composite
def _layer(draw: st.DrawFn) -> dict[str, Any]:
    """One layer as a scenario writes it: a profile and some of its overrides."""
    name = draw(st.sampled_from(sorted(_PROFILES)))
    fields = _FIELDS[_PROFILES[name]]
    keys = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=4))
    return {"profile": name, **{key: draw(fields[key]) for key in keys}}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(_layer(), min_size=1, max_size=3))
def test_a_stacks_label_reads_back_as_that_stack(layers: list[dict[str, Any]]) -> None:
    try:
        stack = parse_stack(layers)
    except ValueError:  # an override its other values leave without effect, a cpu_max the kernel refuses
        reject()
    read = stack_from_text(stack.label)
    assert read == stack and read.label == stack.label
    assert label_profiles(stack.label) == [layer["profile"] for layer in layers]


def test_every_parameter_of_every_profile_reads_back_from_a_label() -> None:
    """Each layer parameter overridden with its profile's own value (None included): whatever
    kinds of value the parameters have, a label writes them so that they read back."""
    tried = 0
    for profile in layer_profiles():
        own = make_layer(profile).params
        for key, info in override_fields(profile).items():
            name = next(n for n, f in type(own).model_fields.items() if f is info)
            try:
                stack = parse_stack([{"profile": profile, key: getattr(own, name)}])
            except ValueError:  # an override the profile's values leave without effect
                continue
            assert stack_from_text(stack.label) == stack, stack.label
            tried += 1
    assert tried > 300  # 13 profiles of 15 to 48 parameters, most of them used


def test_a_list_of_stacks_splits_only_at_commas_outside_braces_and_brackets() -> None:
    stacks = stacks_from_text("kvm,docker{cpu_max=50ms/100ms,cpuset=[0,1]}/kvm{vcpus=4}")
    assert [s.label for s in stacks] == ["kvm", "docker{cpu_max=50ms/100ms,cpuset=[0,1]}/kvm{vcpus=4}"]
    assert stacks[1].entries() == [{"profile": "docker", "cpu_max": "50ms/100ms", "cpuset": [0, 1]},
                                   {"profile": "kvm", "vcpus": 4}]


def test_text_is_read_as_a_file_writes_the_same_stack() -> None:
    """Spaces around keys and values, any unit, keys in any order, "max" for no limit: the same
    stack as the entries of a scenario file."""
    read = stack_from_text("docker{ cpu_max = 0.05s/0.1s , memory_max=1024MiB }/kvm{vcpus=4,halt_poll=0.05ms}")
    written = parse_stack([{"profile": "docker", "memory_max": "1GiB", "cpu_max": "50ms/100ms"},
                           {"profile": "kvm", "halt_poll": "50us", "vcpus": 4}])
    assert read == written and read.label == "docker{cpu_max=50ms/100ms,memory_max=1GiB}/kvm{halt_poll=50us,vcpus=4}"
    assert stack_from_text("docker{cpu_max=max}").entries() == [{"profile": "docker", "cpu_max": None}]


@pytest.mark.parametrize("text, message", [
    ("kvmm", "'kvmm': unknown profile 'kvmm'; known: bare-metal, docker,"),
    ("docker{cpu_max=50ms/100ms/kvm", "'docker{cpu_max=50ms/100ms/kvm': a brace or bracket is never closed; add "
                                      "the '}'"),
    ("docker}/kvm", "'docker}/kvm': '}' at character 7 closes nothing opened before it"),
    ("docker{cpuset=[0,1}", "'docker{cpuset=[0,1}': '}' at character 19 closes nothing"),
    ("docker{cpu_maxx=50ms/100ms}", "'docker{cpu_maxx=50ms/100ms}': profile 'docker' has no parameter 'cpu_maxx'; its "
                                    "parameters are boot, bridge_cycles, cpu_max,"),
    ("kvm{vcpus}", "'kvm{vcpus}': 'vcpus' is not key=value; write each override as key=value"),
    ("kvm{vcpus=4,vcpus=8}", "'kvm{vcpus=4,vcpus=8}': vcpus is given more than once"),
    ("kvm{vcpus=four}", "'kvm{vcpus=four}': profile 'kvm': vcpus: Input should be a valid integer"),
    ("kvm{halt_poll=5furlongs}", "'kvm{halt_poll=5furlongs}': profile 'kvm': halt_poll: '5furlongs': unit 'furlongs'"),
    ("docker{cpuset=0}", "'docker{cpuset=0}': cpuset: a list is written in brackets, like cpuset=[0,1]"),
    ("docker{vcpus=2}x", "'docker{vcpus=2}x': nothing may follow the overrides' closing brace"),
    ("docker//kvm", "'docker//kvm': a layer is missing before or after a \"/\""),
    ("{vcpus=2}", "'{vcpus=2}': a layer is a profile name"),
    ("kvm/bare-metal", "'kvm/bare-metal': \"bare-metal\" means no virtualization layer"),
    (" ", "a stack needs at least one layer; write bare-metal"),
])
def test_bad_text_is_one_line_naming_the_layer_and_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        stack_from_text(text)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
