"""Footprints: what N alike guests cost the host's memory under each hypervisor's page sharing."""

from __future__ import annotations

import pytest

from virtsim.models.density.footprint import footprint
from virtsim.models.virt.stack import Stack, make_layer

MiB = 2**20
VM = {"vmm_memory": "100MiB", "guest_os_memory": "200MiB", "identical_fraction": 0.25}


@pytest.mark.parametrize("policy", ["off", "within-guest"])
def test_without_sharing_between_guests_every_guest_pays_its_whole_os(policy: str) -> None:
    """10 guests x (100 MiB VMM + 200 MiB guest OS + 50 MiB app) = 3,500 MiB, by hand."""
    fp = footprint(Stack((make_layer("kvm", {**VM, "page_sharing": policy}),)), 50 * MiB)
    assert fp.host_memory(10) == pytest.approx(3500 * MiB)


def test_sharing_between_guests_keeps_the_identical_pages_once() -> None:
    """A quarter of the 200 MiB OS (50 MiB) is kept once: 10 x 300 MiB + 50 MiB = 3,050 MiB."""
    fp = footprint(Stack((make_layer("kvm", {**VM, "page_sharing": "between-guests"}),)), 50 * MiB)
    assert fp.host_memory(10) == pytest.approx(3050 * MiB)
    assert fp.host_memory(1) == pytest.approx(350 * MiB)  # one guest shares with nobody


def test_each_hypervisor_shares_as_its_default_does() -> None:
    """ESXi salts pages per VM (no sharing between guests since 2014); Hyper-V, Xen, Firecracker
    and VirtualBox (Linux guests) do not share; nor does KVM unless the host runs KSM (the kernel's
    default is off); hosted VMware products share."""
    policy = {name: make_layer(name).params.page_sharing
              for name in ("kvm", "esxi", "hyperv", "xen", "firecracker", "virtualbox", "vmware-workstation")}
    assert policy == {"kvm": "off", "esxi": "within-guest", "hyperv": "off", "xen": "off",
                      "firecracker": "off", "virtualbox": "off", "vmware-workstation": "between-guests"}
    # With the same guest OS, 64 ESXi guests need more host memory than 64 KVM guests with KSM on.
    ksm = {"vmm_memory": "100MiB", "guest_os_memory": "150MiB", "page_sharing": "between-guests"}
    kvm = footprint(Stack((make_layer("kvm", ksm),)), 512 * MiB)
    esxi = footprint(Stack((make_layer("esxi", {"vmm_memory": "100MiB", "guest_os_memory": "150MiB"}),)), 512 * MiB)
    assert esxi.host_memory(64) - kvm.host_memory(64) == pytest.approx(63 * 0.3 * 150 * MiB)
