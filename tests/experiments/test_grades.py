"""Calibration grades: how much of a stack rests on measurements, and how good those are."""

from __future__ import annotations

from virtsim.experiments.grades import grades_table, stack_grade


def test_docker_by_hand() -> None:
    """docker.toml: 9 parameters; veth_cycles, bridge_cycles, overlay_io_cycles and cpu_weight are
    assumptions, the other 5 cite rows; the rows are grade A except docker-run-hostnet and
    found.csv's moby42096 rows (start_lock), grade C."""
    g = stack_grade("docker")
    assert (g.parameters, g.sourced, g.worst_grade) == (9, 5, "C")
    assert set(g.assumed) == {"docker.veth_cycles", "docker.bridge_cycles", "docker.overlay_io_cycles",
                              "docker.cpu_weight"}
    assert not g.guessed  # exactly half sourced is not below half


def test_a_stack_adds_its_layers_and_an_override_label_reads_the_same_profiles() -> None:
    nested = stack_grade("docker{cpu_max=50ms/100ms}/kvm")
    docker, kvm = stack_grade("docker"), stack_grade("kvm")
    assert nested.parameters == docker.parameters + kvm.parameters
    assert nested.sourced == docker.sourced + kvm.sourced


def test_guessed_profiles_are_flagged_and_an_unknown_name_counts_as_unsourced() -> None:
    table = grades_table(["esxi", "vmware-workstation", "kvm", "kvmm"]).set_index("stack")
    assert table.loc["esxi", "confidence"] == "GUESSED"
    assert table.loc["vmware-workstation", "confidence"] == "GUESSED"
    assert table.loc["kvm", "confidence"] == "sourced"
    assert table.loc["kvmm", "sourced_share"] == 0.0
