"""Physical size (what a disk image occupies on the host) against the real qemu-img and qemu-io.

Images are sparse: a raw disk holds only what was written, a VHDX payload block only the sectors
written into it, a VMDK's preallocated grain tables only the entries set. Each case draws a
random trace from a seed (format, allocation unit, virtual size, write sizes and offsets, how
often the image is reopened), writes it with ``qemu-io`` and compares the model's physical
size with the blocks the host file system gives the file: its extents from FIEMAP
(``filefrag``), which unlike ``du`` leave out the file system's own extent-tree blocks, or
``st_blocks`` where FIEMAP is missing (tmpfs, which has no such blocks). Exact, byte for byte.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from virtsim.models.disks.chain import build_chain_usage
from virtsim.models.disks.formats import format_by_name

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(shutil.which("qemu-img") is None or shutil.which("qemu-io") is None,
                       reason="qemu-img/qemu-io not installed (Debian package qemu-utils)"),
]

KiB, MiB, GiB = 2**10, 2**20, 2**30


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def allocated_bytes(path: Path) -> int:
    """Bytes of the file's data extents (written or zero-filled), past-EOF preallocation left
    out; ``st_blocks`` where the file system has no FIEMAP."""
    run = subprocess.run(["filefrag", "-s", "-v", "-b4096", str(path)], capture_output=True, text=True)
    if run.returncode != 0 or "FIEMAP failed" in run.stderr + run.stdout:
        return path.stat().st_blocks * 512
    size, total = path.stat().st_size, 0
    for line in run.stdout.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0].strip().isdigit():
            start, length = int(parts[1].split("..")[0]), int(parts[3].split()[0])
            if "unwritten" in parts[-1] and start * 4096 >= size:
                continue  # XFS's speculative preallocation past the end of the file
            total += length * 4096
    return total


def create(path: Path, fmt: str, size: int, backing: Path | None = None, **opts: str) -> Path:
    args = ["qemu-img", "create", "-q", "-f", fmt]
    if backing is not None:
        args += ["-b", str(backing), "-F", "qcow2"]
    if opts:
        args += ["-o", ",".join(f"{k}={v}" for k, v in opts.items())]
    _run(*args, str(path), str(size))
    return path


def write_sessions(path: Path, fmt: str, offsets, sizes, per_session: int | None) -> None:
    """The writes in qemu-io sessions of ``per_session`` writes (None: one session)."""
    step = per_session or max(1, len(offsets))
    opts = f"driver={fmt},file.filename={path},cache.no-flush=on"
    for start in range(0, len(offsets), step):
        commands = "".join(f"write {int(o)} {int(s)}\n"
                           for o, s in zip(offsets[start : start + step], sizes[start : start + step], strict=True))
        subprocess.run(["qemu-io", "--image-opts", opts], input=commands + "quit\n", check=True,
                       capture_output=True, text=True)


def draw_case(seed: int) -> tuple[str, dict[str, str], int | None, int, np.ndarray, np.ndarray, int | None]:
    """A format, its create options and allocation unit, a virtual size, a trace, a session length."""
    rng = np.random.default_rng(seed)
    name = ["raw", "qcow2", "vmdk", "vdi", "vhdx"][seed % 5]
    opts: dict[str, str] = {}
    unit: int | None = None
    variant = seed // 5  # each format in turn, each with its units in turn
    if name == "qcow2" and [None, 512, 4 * KiB, 2 * MiB][variant % 4]:
        unit = [None, 512, 4 * KiB, 2 * MiB][variant % 4]  # 512 B: the refcount table moves
        opts["cluster_size"] = str(unit)
    if name == "vhdx" and [None, 1 * MiB, 8 * MiB, None][variant % 4]:
        unit = [None, 1 * MiB, 8 * MiB, None][variant % 4]
        opts["block_size"] = str(unit)
    virtual = int(rng.choice([1, 4, 20, 120 if unit != 512 else 100])) * GiB
    n = int(rng.integers(20, 400))
    aligned = rng.random() < 0.5
    sizes = rng.choice([512, 4 * KiB, 64 * KiB], n) if aligned else rng.integers(1, 70 * KiB, n)
    span = int(virtual // int(rng.choice([1, 64])))  # the whole disk, or a crowded corner of it
    offsets = rng.integers(0, span - 70 * KiB, n)
    if aligned:
        offsets = offsets // sizes * sizes
    per_session = None if rng.random() < 0.5 else int(rng.integers(1, 60))
    return name, opts, unit, virtual, offsets, sizes, per_session


@pytest.mark.parametrize("seed", range(20))
def test_physical_size_matches_qemu_on_random_traces(seed: int, tmp_path: Path) -> None:
    name, opts, unit, virtual, offsets, sizes, per_session = draw_case(seed)
    fmt = format_by_name(name, virtual, unit)
    image = create(tmp_path / f"disk.{name}", name, virtual, **opts)
    empty = np.empty(0, dtype=np.int64)
    assert fmt.physical_bytes_after(empty, empty, virtual) == allocated_bytes(image), "empty"
    write_sessions(image, name, offsets, sizes, per_session)
    model = fmt.physical_bytes_after(offsets, sizes, virtual, reopen_every=per_session)
    assert model == allocated_bytes(image), f"{name} {opts} {virtual} B, {len(offsets)} writes, {per_session}"
    assert fmt.file_bytes_after(offsets, sizes, virtual) == image.stat().st_size  # and the length still


def test_qcow2_overlay_physical_size_counts_whole_clusters_copied_from_the_base(tmp_path: Path) -> None:
    """A write into an overlay copies the rest of the cluster from the base (or zero-fills it)."""
    rng = np.random.default_rng(7)
    virtual = 4 * GiB
    fmt = format_by_name("qcow2", virtual)
    base_writes = (rng.integers(0, 2**14, 200) * 64 * KiB, np.full(200, 64 * KiB))
    base = create(tmp_path / "base.qcow2", "qcow2", virtual)
    write_sessions(base, "qcow2", *base_writes, None)
    overlay = create(tmp_path / "top.qcow2", "qcow2", virtual, backing=base)
    writes = (rng.integers(0, 2**20, 300) * 1000, rng.integers(1, 9000, 300))
    write_sessions(overlay, "qcow2", *writes, None)
    assert fmt.physical_bytes_after(*writes, virtual, differencing=True) == allocated_bytes(overlay)


@pytest.mark.parametrize("target", ["raw", "qcow2", "vmdk", "vdi", "vhdx"])
def test_a_full_clone_occupies_what_qemu_img_convert_writes(target: str, tmp_path: Path) -> None:
    """qemu-img convert of a qcow2 chain into each format: sparse formats hold only the 4 KiB
    pieces that hold data (convert's -S 4k); the model's clone_physical of the chain's writes."""
    rng = np.random.default_rng(11)
    virtual = 2 * GiB
    levels = [(rng.integers(0, virtual // 4096 - 20, n) * 4096, rng.integers(1, 40 * KiB, n))
              for n in (300, 150)]
    base = create(tmp_path / "base.qcow2", "qcow2", virtual)
    write_sessions(base, "qcow2", *levels[0], None)
    top = create(tmp_path / "top.qcow2", "qcow2", virtual, backing=base)
    write_sessions(top, "qcow2", *levels[1], None)
    clone = tmp_path / f"clone.{target}"
    _run("qemu-img", "convert", "-O", target, str(top), str(clone))
    fmt = format_by_name(target, virtual)
    usage = build_chain_usage(fmt, virtual, levels[0], [levels[1:]], host_block_bytes=4096)
    assert usage.clone_bytes[0] == allocated_bytes(clone)
