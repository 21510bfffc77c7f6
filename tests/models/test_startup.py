"""Start-up: single boots match the published medians; storms queue for the cores and the disk."""

from __future__ import annotations

import numpy as np
import pytest

from models.density.startup import boot_storm, boot_workload
from models.hardware.host import HostSpec
from models.virt.stack import Stack, make_layer

HOST = HostSpec.model_validate({"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"})


def test_single_boots_have_the_published_median() -> None:
    """Firecracker: published.csv fc-boot-firecracker-e2e, 160.9 ms p50 (read included)."""
    stack = Stack.of(["firecracker"])
    alone = np.array([boot_storm(HOST, stack, 1, seed=s)[0] for s in range(300)])
    assert np.median(alone) == pytest.approx(0.1609, rel=0.05)
    assert alone.std() > 0  # a distribution, not a constant


def test_a_storm_of_cpu_bound_boots_takes_total_work_over_cores() -> None:
    """64 boots of ~1.284 s CPU each (docker) on 4 cores: the last is done after about
    64 x 1.284 x E[lognormal factor] / 4, where E = exp(sigma^2 / 2)."""
    stack = Stack.of(["docker"])
    finish = boot_storm(HOST, stack, 64, seed=3)
    sigma = 0.2
    expected = 64 * 1.284 * np.exp(sigma**2 / 2) / 4
    assert finish.max() == pytest.approx(expected, rel=0.1)


def test_vm_boots_read_their_boot_files_from_the_host_disk() -> None:
    wl = boot_workload(HOST, Stack.of(["kvm"]), 8)
    assert [d.kind for d in wl.demands] == ["io", "cpu"] and wl.arrivals.kind == "batch"
    slow_disk = HOST.model_copy(update={"storage": HOST.storage.model_copy(update={"bandwidth_Bps": 50e6})})
    stack = Stack((make_layer("kvm"),))
    # 32 VMs x 64 MiB at 50 MB/s is 43 s of reading: the disk, not the CPU, sets the storm's length.
    assert boot_storm(slow_disk, stack, 32).max() > 40


def test_pulling_images_in_a_storm_contends_for_the_network() -> None:
    """16 containers each pulling 500 MB over a 9.4 Gbit/s NIC: at least 16 x 500 MB / 1.175 GB/s
    = 6.8 s, however fast they would start with the layers already present."""
    stack = Stack.of(["docker"])
    cached = boot_storm(HOST, stack, 16).max()
    pulled = boot_storm(HOST, stack, 16, pull_bytes=500e6).max()
    assert pulled >= 16 * 500e6 * 8 / HOST.network.bandwidth_bps
    assert pulled > cached + 5


def test_without_a_balloon_the_host_backs_the_whole_guest_memory() -> None:
    from models.density.footprint import footprint

    with_balloon = footprint(Stack((make_layer("kvm"),)), 256 * 2**20)
    without = footprint(Stack((make_layer("kvm", {"balloon": False}),)), 256 * 2**20)
    p = make_layer("kvm").params
    assert without.private_bytes - with_balloon.private_bytes == pytest.approx(
        p.guest_memory_bytes - p.guest_os_memory_bytes - 256 * 2**20)
