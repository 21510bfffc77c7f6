"""Start-up: single boots match the published medians; storms queue for the cores and the disk."""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.models.density.startup import boot_storm, boot_workload
from virtsim.models.hardware.host import HostSpec
from virtsim.models.virt.stack import Stack, make_layer

HOST = HostSpec.model_validate({"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"})


def test_single_boots_have_the_published_median() -> None:
    """Firecracker: published.csv fc-boot-firecracker-e2e, 160.9 ms p50 (read included)."""
    stack = Stack.of(["firecracker"])
    alone = np.array([boot_storm(HOST, stack, 1, seed=s)[0] for s in range(300)])
    assert np.median(alone) == pytest.approx(0.1609, rel=0.05)
    assert alone.std() > 0  # a distribution, not a constant


def test_a_storm_of_boots_takes_their_cpu_work_over_cores() -> None:
    """64 docker-nat boots of ~1.284 s, half of it CPU work, on 4 cores: the last is done after
    about 64 x 0.642 x E[lognormal factor] / 4 (E = exp(sigma^2 / 2)) plus one boot's wait (0.642 s)."""
    from virtsim.models.density.startup import BOOT_CPU_FRACTION, BOOT_SIGMA

    stack = Stack((make_layer("docker-nat", {"start_lock": 0}),))  # no part taken in turn: see below
    finish = boot_storm(HOST, stack, 64, seed=3)
    cpu = 1.284 * BOOT_CPU_FRACTION
    expected = 64 * cpu * np.exp(BOOT_SIGMA**2 / 2) / 4 + (1.284 - cpu)
    assert finish.max() == pytest.approx(expected, rel=0.1)


def test_vm_boots_read_their_boot_files_from_the_host_disk() -> None:
    wl = boot_workload(HOST, Stack.of(["kvm"]), 8)
    assert [d.kind for d in wl.demands] == ["io", "cpu", "delay"] and wl.arrivals.kind == "batch"
    slow_disk = HOST.model_copy(update={"storage": HOST.storage.model_copy(update={"bandwidth_Bps": 50e6})})
    stack = Stack((make_layer("kvm"),))
    # One VM reads its 64 MiB at 50 MB/s: 1.34 s. 32 VMs of the same image share the page cache:
    # the disk reads it once, so the storm is not 32 x 1.34 = 43 s (as it was without the cache).
    alone = boot_storm(slow_disk, stack, 1)[0]
    storm = boot_storm(slow_disk, stack, 32)
    assert alone > 1.34 and storm.max() < alone + 2.0


def test_pulling_images_in_a_storm_contends_for_the_network() -> None:
    """16 containers each pulling 500 MB over a 9.4 Gbit/s NIC: at least 16 x 500 MB / 1.175 GB/s
    = 6.8 s, however fast they would start with the layers already present."""
    stack = Stack.of(["docker"])
    cached = boot_storm(HOST, stack, 16).max()
    pulled = boot_storm(HOST, stack, 16, pull_bytes=500e6).max()
    assert pulled >= 16 * 500e6 * 8 / HOST.network.bandwidth_bps
    assert pulled > cached + 5


def test_without_a_balloon_the_host_backs_the_whole_guest_memory() -> None:
    from virtsim.models.density.footprint import footprint

    with_balloon = footprint(Stack((make_layer("kvm"),)), 256 * 2**20)
    without = footprint(Stack((make_layer("kvm", {"balloon": False}),)), 256 * 2**20)
    p = make_layer("kvm").params
    assert without.private_bytes - with_balloon.private_bytes == pytest.approx(
        p.guest_memory_bytes - p.guest_os_memory_bytes - 256 * 2**20)


def test_a_nested_stack_boots_its_layers_one_after_another() -> None:
    """A container in a new VM starts after the VM has booted; a VM in a VM after the outer one.
    The medians add: docker-in-kvm ~ kvm + docker, kvm-in-kvm ~ 2 x kvm (each layer reads its own
    boot files). Medians over 200 seeds, so the lognormal spread does not decide the comparison."""
    def median(names: list[str]) -> float:
        stack = Stack.of(names)
        return float(np.median([boot_storm(HOST, stack, 1, seed=s)[0] for s in range(200)]))

    kvm, docker = median(["kvm"]), median(["docker"])
    assert median(["docker", "kvm"]) == pytest.approx(kvm + docker, rel=0.05)
    assert median(["kvm", "kvm"]) == pytest.approx(2 * kvm, rel=0.1)


def test_docker_with_host_networking_starts_as_its_row_says() -> None:
    """Review 28 F16: the docker profile (host networking) took the bridge row's 1,284 ms; its own
    source has --network=host at 644 ms (published.csv docker-run-hostnet)."""
    assert make_layer("docker").params.boot_s == pytest.approx(0.644)
    assert make_layer("docker-nat").params.boot_s == pytest.approx(1.284)


def test_starts_at_once_take_the_kernels_start_lock_in_turn() -> None:
    """By hand: a container whose whole 0.5 s start is locked (``start_lock = boot``: no CPU, no
    other wait); six started at once on the host's kernel finish 0.5 s apart, the last after 3 s,
    though the four cores are idle throughout."""
    stack = Stack((make_layer("docker", {"boot": "500ms", "start_lock": "500ms"}),))
    finish = np.sort(boot_storm(HOST, stack, 6, seed=1))
    assert finish == pytest.approx(0.5 * np.arange(1, 7), abs=1e-9)


def test_a_start_storm_grows_with_the_starts_by_their_locked_part() -> None:
    """docker-nat (1.284 s, 452 ms of it locked: found.csv moby42096-*) on 4 cores: a start ends
    when it gives the lock back, so the starts end at least 452 ms apart, exactly that once they
    queue for it; the last ends about N x 0.452 s after the first reached the lock (0.832 s in
    alone; later when N starts share the cores for their CPU work first)."""
    stack = Stack.of(["docker-nat"])
    lock = stack.layers[0].params.start_lock_s
    assert lock == pytest.approx(0.452)
    for n in (8, 32, 64):
        finish = np.sort(boot_storm(HOST, stack, n, seed=2))
        gaps = np.diff(finish)
        assert gaps.min() >= lock - 1e-9 and np.mean(np.isclose(gaps, lock)) > 0.75
        assert finish[-1] == pytest.approx(n * lock + (1.284 - lock), rel=0.25)


def test_containers_in_their_own_vms_take_their_own_kernels_locks() -> None:
    """docker in a KVM guest each: every VM's kernel has its own locks, so eight such starts at
    once are not 8 x 452 ms apart (as eight on the host's kernel are)."""
    in_vms = boot_storm(HOST, Stack.of(["docker-nat", "kvm"]), 8, seed=4)
    on_host = boot_storm(HOST, Stack.of(["docker-nat"]), 8, seed=4)
    assert np.ptp(on_host) >= 7 * 0.452 * 0.95
    assert np.ptp(in_vms) < 2 * 0.452


def test_a_locked_part_longer_than_the_start_is_refused() -> None:
    with pytest.raises(ValueError, match=r"start_lock .* cannot be longer"):
        make_layer("docker", {"boot": "100ms", "start_lock": "200ms"})
