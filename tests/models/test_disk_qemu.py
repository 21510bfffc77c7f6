"""The image-format model against the real qemu-img and qemu-io, byte for byte.

Each case creates images with ``qemu-img create`` (overlays with ``-b``), writes with
``qemu-io -c 'write OFFSET SIZE'``, and compares the file size, and for qcow2 the clusters
``qemu-img map`` reports as allocated in the top image, with the model's. Full clones are
compared with what ``qemu-img convert`` writes from a chain.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from virtsim.models.disks.allocation import touched_units
from virtsim.models.disks.chain import build_chain_usage, committed, emptied_bytes, rebased
from virtsim.models.disks.formats import format_by_name

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(shutil.which("qemu-img") is None or shutil.which("qemu-io") is None,
                       reason="qemu-img/qemu-io not installed (Debian package qemu-utils)"),
]

KiB, MiB, GiB = 2**10, 2**20, 2**30
RNG = np.random.default_rng(2026)


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def create(path: Path, fmt: str, size: int, backing: Path | None = None, **opts: str) -> Path:
    args = ["qemu-img", "create", "-q", "-f", fmt]
    if backing is not None:
        args += ["-b", str(backing), "-F", fmt]
    if opts:
        args += ["-o", ",".join(f"{k}={v}" for k, v in opts.items())]
    _run(*args, str(path), str(size))
    return path


def write(path: Path, fmt: str, offsets, sizes) -> None:
    commands = [f"write {int(o)} {int(s)}" for o, s in zip(offsets, sizes, strict=True)]
    for start in range(0, len(commands), 500):  # keep the command line short
        args = ["qemu-io", "-f", fmt]
        for c in commands[start : start + 500]:
            args += ["-c", c]
        _run(*args, str(path))


def allocated_clusters(path: Path, cluster: int, n: int) -> np.ndarray:
    """Clusters qemu-img map reports as data in the top image itself (depth 0)."""
    bitmap = np.zeros(n, dtype=bool)
    for entry in json.loads(_run("qemu-img", "map", "--output=json", str(path))):
        if entry["depth"] == 0 and entry["data"]:
            bitmap[entry["start"] // cluster : (entry["start"] + entry["length"]) // cluster] = True
    return bitmap


def touched_bitmap(offsets, sizes, unit: int, n: int) -> np.ndarray:
    bitmap = np.zeros(n, dtype=bool)
    bitmap[touched_units(np.asarray(offsets), np.asarray(sizes), unit)] = True
    return bitmap


def _random(n: int, io: int, span: int, align: int = 4 * KiB):
    return RNG.integers(0, span // align, n) * align, np.full(n, io)


def _zipf(n: int, io: int, span: int):
    hot = (RNG.zipf(1.3, n) - 1) % (span // io)
    return hot * io, np.full(n, io)


QCOW2_CASES = {
    "one 4 KiB write": ([0], [4 * KiB]),
    "two writes in one cluster": ([0, 8 * KiB], [4 * KiB, 4 * KiB]),
    "partial, unaligned": ([1000], [100]),
    "spanning two clusters": ([60 * KiB], [8 * KiB]),
    "sequential 1 MiB": ([3 * MiB], [1 * MiB]),
    "across an L2 boundary": ([512 * MiB - 4 * KiB], [8 * KiB]),
    "end of the disk": ([20 * GiB - 4 * KiB], [4 * KiB]),
    "overwrites of one region": ([5 * MiB] * 6, [64 * KiB] * 6),
    "random 4 KiB over 20 GiB": _random(300, 4 * KiB, 20 * GiB),
    "random 16 KiB in 1 GiB": _random(300, 16 * KiB, 1 * GiB),
    "Zipf-hot 4 KiB": _zipf(400, 4 * KiB, 2 * GiB),
    "log append of 512 B records": (np.arange(300) * 512 + 7 * GiB, np.full(300, 512)),
}


@pytest.mark.parametrize("case", list(QCOW2_CASES))
def test_qcow2_overlay_matches_qemu(case: str, tmp_path: Path) -> None:
    offsets, sizes = (np.asarray(a) for a in QCOW2_CASES[case])
    virtual = 20 * GiB
    fmt = format_by_name("qcow2", virtual)
    base = create(tmp_path / "base.qcow2", "qcow2", virtual)
    overlay = create(tmp_path / "overlay.qcow2", "qcow2", virtual, backing=base)
    assert os.path.getsize(overlay) == fmt.empty_bytes(virtual)
    write(overlay, "qcow2", offsets, sizes)
    n = fmt.n_units(virtual)
    model = touched_bitmap(offsets, sizes, fmt.unit_bytes, n)
    np.testing.assert_array_equal(allocated_clusters(overlay, fmt.unit_bytes, n), model)
    assert os.path.getsize(overlay) == fmt.file_bytes(np.flatnonzero(model), virtual, differencing=True)


def test_qcow2_two_level_chain_matches_qemu(tmp_path: Path) -> None:
    """base <- snap1 <- snap2: each level allocates only what is written to it."""
    virtual = 4 * GiB
    fmt = format_by_name("qcow2", virtual)
    n = fmt.n_units(virtual)
    writes = [_random(100, 4 * KiB, virtual), _random(80, 8 * KiB, virtual), ([0, 100 * KiB], [200 * KiB, 1])]
    paths = [create(tmp_path / "base.qcow2", "qcow2", virtual)]
    write(paths[0], "qcow2", *writes[0])
    for level in (1, 2):
        paths.append(create(tmp_path / f"snap{level}.qcow2", "qcow2", virtual, backing=paths[-1]))
        write(paths[-1], "qcow2", *writes[level])
    for path, (offsets, sizes) in zip(paths, writes, strict=True):
        model = touched_bitmap(np.asarray(offsets), np.asarray(sizes), fmt.unit_bytes, n)
        np.testing.assert_array_equal(allocated_clusters(path, fmt.unit_bytes, n), model)
        assert os.path.getsize(path) == fmt.file_bytes(np.flatnonzero(model), virtual), path.name


def test_qcow2_other_cluster_size_matches_qemu(tmp_path: Path) -> None:
    virtual = 8 * GiB
    fmt = format_by_name("qcow2", virtual, 4 * KiB)
    image = create(tmp_path / "small.qcow2", "qcow2", virtual, cluster_size=str(4 * KiB))
    assert os.path.getsize(image) == fmt.empty_bytes(virtual)
    offsets, sizes = _random(300, 4 * KiB, virtual)
    write(image, "qcow2", offsets, sizes)
    assert os.path.getsize(image) == fmt.file_bytes(touched_units(offsets, sizes, fmt.unit_bytes), virtual)


@pytest.mark.parametrize("name, opts", [("vdi", {}), ("vmdk", {}), ("vhdx", {"block_size": str(2 * MiB)}),
                                        ("vhdx", {})])
@pytest.mark.parametrize("virtual", [1 * GiB, 20 * GiB, 101 * GiB])
def test_dynamic_images_of_other_formats_match_qemu(name: str, opts: dict, virtual: int, tmp_path: Path) -> None:
    """VHDX with no block_size takes QEMU's default for the size (8, 16, 32 MiB here)."""
    fmt = format_by_name(name, virtual, int(opts["block_size"]) if "block_size" in opts else None)
    image = create(tmp_path / f"disk.{name}", name, virtual, **opts)
    assert os.path.getsize(image) == fmt.empty_bytes(virtual)
    offsets, sizes = _random(60, 4 * KiB, virtual)
    offsets = np.append(offsets, [0, 64 * KiB - 512])
    sizes = np.append(sizes, [4 * KiB, 4 * KiB])
    write(image, name, offsets, sizes)
    assert os.path.getsize(image) == fmt.file_bytes(touched_units(offsets, sizes, fmt.unit_bytes), virtual)


@pytest.mark.parametrize("seed", range(6))
def test_a_full_clone_is_what_qemu_img_convert_writes_from_the_chain(seed: int, tmp_path: Path) -> None:
    """A seeded random chain (cluster size, depth 1-3, writes that overlap the base): the model's
    full-clone size equals the qcow2 file qemu-img convert makes of the top image."""
    rng = np.random.default_rng(seed)
    cluster = int(2 ** rng.integers(12, 17))  # 4 KiB .. 64 KiB
    virtual = int(rng.integers(1, 5)) * GiB
    fmt = format_by_name("qcow2", virtual, cluster)
    depth = int(rng.integers(1, 4))
    span = virtual // 8  # writes crowd into one eighth of the disk, so the levels overlap

    def writes(n: int) -> tuple[np.ndarray, np.ndarray]:
        sizes = rng.integers(1, 3 * cluster, n)
        return rng.integers(0, span - 3 * cluster, n), sizes

    levels = [writes(int(rng.integers(20, 120))) for _ in range(depth + 1)]
    opts = {"cluster_size": str(cluster)}
    paths = [create(tmp_path / "l0.qcow2", "qcow2", virtual, **opts)]
    write(paths[0], "qcow2", *levels[0])
    for level in range(1, depth + 1):
        paths.append(create(tmp_path / f"l{level}.qcow2", "qcow2", virtual, backing=paths[-1], **opts))
        write(paths[-1], "qcow2", *levels[level])
    clone = tmp_path / "clone.qcow2"
    _run("qemu-img", "convert", "-O", "qcow2", "-o", f"cluster_size={cluster}", str(paths[-1]), str(clone))
    usage = build_chain_usage(fmt, virtual, levels[0], [levels[1:]])
    assert usage.clone_bytes[0] == os.path.getsize(clone)
    assert usage.per_guest_view()[0] == sum(os.path.getsize(p) for p in paths)


def test_qemu_also_refuses_a_write_past_the_end_inside_the_last_cluster(tmp_path: Path) -> None:
    image = create(tmp_path / "odd.qcow2", "qcow2", GiB + 512)
    past = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write {GiB} 1024", str(image)],
                          capture_output=True, text=True)
    assert past.returncode != 0 and "write failed" in past.stdout + past.stderr
    write(image, "qcow2", [GiB], [512])  # the last sector itself is writable, as in the model


# -- past the first refcount table: QEMU moves it and leaves free clusters in the file --------

def write_one_session(path: Path, offsets, sizes) -> None:
    """All writes in one qemu-io session (commands on stdin), as a running guest makes them.
    No flushes and no overlap checks: they cost time, not allocations (same file either way)."""
    commands = "".join(f"write {int(o)} {int(s)}\n" for o, s in zip(offsets, sizes, strict=True))
    subprocess.run(["qemu-io", "--image-opts",
                    f"driver=qcow2,file.filename={path},cache.no-flush=on,overlap-check=none"],
                   input=commands + "quit\n", check=True, capture_output=True, text=True)


def write_sessions(path: Path, offsets, sizes, per_session: int) -> None:
    """The writes in qemu-io command lines of ``per_session`` writes: the image is reopened
    between them, which lets QEMU reuse the clusters of a refcount table it freed."""
    for start in range(0, len(offsets), per_session):
        write_one_session(path, offsets[start : start + per_session], sizes[start : start + per_session])


def _sequential(n: int, io: int):
    return np.arange(n) * io, np.full(n, io)


GROWTH_CASES = {
    # cluster, virtual, writes: each file passes what the first refcount table covers (8 MiB of
    # file at 512 B clusters, 64 MiB at 1 KiB, 512 MiB at 2 KiB) but the 64 KiB and 2 MiB ones
    "512 B, 4096 sequential 4 KiB": (512, 1 * GiB, _sequential(4096, 4 * KiB)),
    "512 B, 3000 random 4 KiB over 20 GiB": (512, 20 * GiB, _random(3000, 4 * KiB, 20 * GiB)),
    "512 B, 2000 random 1 B .. 20 KiB": (512, 2 * GiB, (RNG.integers(0, 2 * GiB - 20_000, 2000),
                                                        RNG.integers(1, 20_000, 2000))),
    "1 KiB, 1200 sequential 64 KiB": (1 * KiB, 20 * GiB, _sequential(1200, 64 * KiB)),
    "1 KiB, 1200 random 64 KiB": (1 * KiB, 20 * GiB, _random(1200, 64 * KiB, 20 * GiB, 64 * KiB)),
    "2 KiB, 600 sequential 1 MiB": (2 * KiB, 20 * GiB, _sequential(600, 1 * MiB)),
    "2 KiB, 600 random 1 MiB": (2 * KiB, 20 * GiB, _random(600, 1 * MiB, 20 * GiB, 1 * MiB)),
    "4 KiB, 3000 random 4 KiB (no growth)": (4 * KiB, 20 * GiB, _random(3000, 4 * KiB, 20 * GiB)),
    "64 KiB, 3000 random 4 KiB": (64 * KiB, 20 * GiB, _random(3000, 4 * KiB, 20 * GiB)),
    "2 MiB, 300 random 4 KiB": (2 * MiB, 20 * GiB, _random(300, 4 * KiB, 20 * GiB)),
}


@pytest.mark.parametrize("case", list(GROWTH_CASES))
def test_qcow2_file_size_matches_qemu_past_the_first_refcount_table(case: str, tmp_path: Path) -> None:
    """Byte for byte, with the writes in one session and reopened every 500 writes."""
    cluster, virtual, (offsets, sizes) = GROWTH_CASES[case]
    fmt = format_by_name("qcow2", virtual, cluster)
    for per_session in (None, 500):
        image = create(tmp_path / f"g{per_session}.qcow2", "qcow2", virtual, cluster_size=str(cluster))
        assert os.path.getsize(image) == fmt.empty_bytes(virtual)
        if per_session is None:
            write_one_session(image, offsets, sizes)
        else:
            write_sessions(image, offsets, sizes, per_session)
        model = fmt.file_bytes_after(offsets, sizes, virtual, reopen_every=per_session)
        assert model == os.path.getsize(image), f"{per_session} writes per session"
        image.unlink()


@pytest.mark.parametrize("cluster, virtual", [(512, 100 * GiB), (512, 128 * GiB), (1 * KiB, 512 * GiB),
                                              (2 * MiB, 20 * GiB)])
def test_an_empty_qcow2_with_a_large_l1_table_matches_qemu(cluster: int, virtual: int, tmp_path: Path) -> None:
    """Small clusters: the L1 table needs refcount blocks after it, past 32 GiB at 512 B even
    a larger refcount table."""
    image = create(tmp_path / "empty.qcow2", "qcow2", virtual, cluster_size=str(cluster))
    assert os.path.getsize(image) == format_by_name("qcow2", virtual, cluster).empty_bytes(virtual)


def test_qemu_refuses_or_clamps_the_allocation_units_the_model_refuses(tmp_path: Path) -> None:
    """qcow2 clusters outside 512 B .. 2 MiB and disks past a 32 MiB L1 table are refused;
    VHDX blocks outside 1 MiB .. 256 MiB are silently clamped into that range."""
    for cluster in ("256", "4M", "64M"):
        done = subprocess.run(["qemu-img", "create", "-f", "qcow2", "-o", f"cluster_size={cluster}",
                               str(tmp_path / "c.qcow2"), "1G"], capture_output=True, text=True)
        assert done.returncode != 0 and "Cluster size must be a power of two between 512 and 2048k" in done.stderr
    too_big = subprocess.run(["qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512",
                              str(tmp_path / "big.qcow2"), str(128 * GiB + 512)], capture_output=True, text=True)
    assert too_big.returncode != 0 and "image size is too large" in too_big.stderr
    for asked, made in ((512 * KiB, 1 * MiB), (512 * MiB, 256 * MiB)):
        image = create(tmp_path / f"{asked}.vhdx", "vhdx", 1 * GiB, block_size=str(asked))
        assert json.loads(_run("qemu-img", "info", "--output=json", str(image)))["cluster-size"] == made
        with pytest.raises(ValueError, match=re.escape("a vhdx block is 1 MiB .. 256 MiB")):
            format_by_name("vhdx", 1 * GiB, asked)
    with pytest.raises(ValueError, match=re.escape("a qcow2 cluster is 512 B .. 2 MiB")):
        format_by_name("qcow2", 1 * GiB, 64 * MiB)
    with pytest.raises(ValueError, match="addresses at most 128 GiB"):
        format_by_name("qcow2", 128 * GiB + 512, 512)


def write_pattern(path: Path, fmt: str, offsets, sizes, pattern: int) -> None:
    """As :func:`write`, every byte ``pattern``: levels of a chain hold different data (rebase compares it)."""
    commands = [f"write -P {pattern} {int(o)} {int(s)}" for o, s in zip(offsets, sizes, strict=True)]
    for start in range(0, len(commands), 500):
        args = ["qemu-io", "-f", fmt]
        for c in commands[start : start + 500]:
            args += ["-c", c]
        _run(*args, str(path))


def _random_chain(rng: np.random.Generator, levels: int, tmp_path: Path, fmt_name: str = "qcow2"):
    """A seeded chain of ``levels`` images (cluster size, virtual size, writes that overlap), made
    with qemu-img and qemu-io; returns the format, virtual size, each level's writes and paths."""
    virtual = int(rng.integers(1, 5)) * GiB
    cluster = int(2 ** rng.integers(12, 17)) if fmt_name == "qcow2" else None
    fmt = format_by_name(fmt_name, virtual, cluster)
    unit = fmt.unit_bytes
    span = virtual // 8  # writes crowd into one eighth of the disk, so the levels overlap
    writes = [(rng.integers(0, span - 3 * unit, n), rng.integers(1, 3 * unit, n))
              for n in rng.integers(20, 120, levels)]
    opts = {"cluster_size": str(cluster)} if cluster else {}
    paths: list[Path] = []
    for level, (offsets, sizes) in enumerate(writes):
        paths.append(create(tmp_path / f"l{level}.{fmt_name}", fmt_name, virtual,
                            backing=paths[-1] if paths else None, **opts))
        write_pattern(paths[-1], fmt_name, offsets, sizes, level + 1)
    return fmt, virtual, writes, paths


@pytest.mark.parametrize("seed", range(6))
def test_commit_leaves_the_backing_image_and_the_overlay_as_qemu_img_commit_does(seed: int, tmp_path: Path) -> None:
    """A seeded chain base <- (middle <-) overlay; the overlay committed into the level below it
    (or with ``-b`` through the middle into the base): the model's lengths of both files equal
    qemu's, for qcow2 of 4-64 KiB clusters and for VMDK."""
    rng = np.random.default_rng(seed)
    name = "vmdk" if seed >= 4 else "qcow2"
    levels = 2 + seed % 2
    fmt, virtual, writes, paths = _random_chain(rng, levels, tmp_path, name)
    top = paths[-1]
    if levels == 3 and name == "qcow2":  # commit -b: through the middle into the base; -d implied
        _run("qemu-img", "commit", "-f", name, "-b", str(paths[0]), str(top))
        into = committed(fmt, writes[0], (np.concatenate([writes[1][0], writes[2][0]]),
                                          np.concatenate([writes[1][1], writes[2][1]])))
        assert os.path.getsize(paths[0]) == fmt.file_bytes_after(*into, virtual)
        assert os.path.getsize(paths[1]) == fmt.file_bytes_after(*writes[1], virtual, differencing=True)
        assert os.path.getsize(top) == fmt.file_bytes_after(*writes[2], virtual, differencing=True)
        return
    _run("qemu-img", "commit", "-f", name, str(top))
    into = committed(fmt, writes[-2], writes[-1])
    assert os.path.getsize(paths[-2]) == fmt.file_bytes_after(*into, virtual, differencing=levels > 2)
    assert os.path.getsize(top) == emptied_bytes(fmt, virtual, writes[-1])


@pytest.mark.parametrize("seed", range(6))
def test_rebase_copies_into_the_overlay_what_the_dropped_levels_held(seed: int, tmp_path: Path) -> None:
    """A seeded three-level qcow2 chain, each level with its own data; the overlay rebased onto
    the base (dropping the middle) or onto nothing (a flatten): its length equals qemu's."""
    rng = np.random.default_rng(100 + seed)
    fmt, virtual, writes, paths = _random_chain(rng, 3, tmp_path)
    if seed % 2 == 0:
        _run("qemu-img", "rebase", "-f", "qcow2", "-b", str(paths[0]), "-F", "qcow2", str(paths[2]))
        dropped = [writes[1]]
    else:
        _run("qemu-img", "rebase", "-f", "qcow2", "-b", "", str(paths[2]))
        dropped = writes[:2]
    # QEMU's own writes, and each unit alone: the same length while the file is dense
    for after in (rebased(fmt, writes[2], dropped, virtual), rebased(fmt, writes[2], dropped)):
        assert os.path.getsize(paths[2]) == fmt.file_bytes_after(*after, virtual, differencing=True)


def test_formats_without_backing_files_refuse_chain_operations() -> None:
    for name in ("vdi", "vhdx", "raw"):
        fmt = format_by_name(name, GiB)
        with pytest.raises(ValueError, match="cannot be committed or rebased"):
            committed(fmt, (np.array([0]), np.array([4096])), (np.array([0]), np.array([4096])))


@pytest.mark.parametrize("seed", range(8))
def test_an_internal_snapshot_grows_the_image_as_qemu_img_snapshot_does(seed: int, tmp_path: Path) -> None:
    """A seeded qcow2 image (4-64 KiB clusters) written, snapshotted with ``qemu-img snapshot -c``,
    then written again where it was written before and elsewhere (none at all for seed 0): the
    model's length equals qemu's."""
    rng = np.random.default_rng(200 + seed)
    cluster = int(2 ** rng.integers(12, 17)) if seed != 1 else 4 * KiB
    virtual = int(rng.integers(1, 5)) * GiB
    fmt = format_by_name("qcow2", virtual, cluster)
    span = virtual // 8

    def writes(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(0, span - 3 * cluster, n), rng.integers(1, 3 * cluster, n)

    before, after = writes(int(rng.integers(20, 200))), writes(0 if seed == 0 else int(rng.integers(1, 200)))
    name = "before-upgrade" if seed % 2 else "snap1"
    image = create(tmp_path / "s.qcow2", "qcow2", virtual, cluster_size=str(cluster))
    write(image, "qcow2", *before)
    _run("qemu-img", "snapshot", "-c", name, str(image))
    if len(after[0]):
        write(image, "qcow2", *after)
    assert os.path.getsize(image) == fmt.snapshot_file_bytes(before, after, virtual, name=name)


def _deflated_bytes(block: bytes) -> int:
    """What QEMU's qcow2 zlib compression makes of a cluster (raw deflate, 4 KiB window, memLevel 9)."""
    z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -12, 9, zlib.Z_DEFAULT_STRATEGY)
    return len(z.compress(block) + z.flush())


@pytest.mark.parametrize("seed", range(6))
def test_a_compressed_copy_is_as_long_as_qemu_img_convert_c_writes_it(seed: int, tmp_path: Path) -> None:
    """A seeded raw disk (512 B .. 64 KiB clusters) of random, constant, text-like and half-empty
    clusters, converted with ``qemu-img convert -c``: given each cluster's deflated size, the
    model's length equals qemu's (packing, clusters that do not shrink, refcount blocks, the
    sector-aligned end)."""
    rng = np.random.default_rng(300 + seed)
    cluster = [512, 1024, 4096, 16384, 65536, 65536][seed]
    n = 3000 if cluster < 4096 else int(rng.integers(150, 400 if cluster > 4096 else 1500))
    virtual = 4 * n * cluster
    data = bytearray(virtual)
    units = np.sort(rng.choice(4 * n, n, replace=False))
    sizes = []
    for unit in units:
        kind = int(rng.integers(0, 4))
        if kind == 0:
            block = rng.integers(0, 256, cluster, dtype=np.uint8).tobytes()  # does not shrink
        elif kind == 1:
            block = bytes([int(rng.integers(1, 256))]) * cluster
        elif kind == 2:
            block = b"".join(b"w%02d" % w for w in rng.integers(0, 50, cluster // 3 + 1))[:cluster]
        else:
            block = rng.integers(0, 256, cluster // 2, dtype=np.uint8).tobytes() + bytes(cluster - cluster // 2)
        data[unit * cluster:(unit + 1) * cluster] = block
        sizes.append(_deflated_bytes(block))
    source, copy = tmp_path / "disk.raw", tmp_path / "copy.qcow2"
    source.write_bytes(bytes(data))
    _run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", f"cluster_size={cluster}",
         str(source), str(copy))
    fmt = format_by_name("qcow2", virtual, cluster)
    assert os.path.getsize(copy) == fmt.compressed_clone_bytes(units, np.array(sizes), virtual)


@pytest.mark.parametrize("cluster", [512, 1024, 2048])
def test_commit_copies_small_clusters_in_4_kib_granules_as_qemus_mirror_job_does(cluster: int, tmp_path: Path) -> None:
    """Review 11: with clusters under 4 KiB, one 512-byte write in the overlay cost the backing
    image 8, 4 or 2 clusters: qemu-img commit's mirror job copies 4 KiB granules. Seeded random
    writes of 1 B .. 3 clusters into a 64 MiB chain."""
    rng = np.random.default_rng(cluster)
    virtual = 64 * MiB
    fmt = format_by_name("qcow2", virtual, cluster)
    writes = [(rng.integers(0, virtual // 4, n), rng.integers(1, 3 * cluster, n)) for n in (60, 80)]
    base = create(tmp_path / "b.qcow2", "qcow2", virtual, cluster_size=str(cluster))
    write_pattern(base, "qcow2", *writes[0], 1)
    top = create(tmp_path / "t.qcow2", "qcow2", virtual, backing=base, cluster_size=str(cluster))
    write_pattern(top, "qcow2", *writes[1], 2)
    _run("qemu-img", "commit", str(top))
    assert os.path.getsize(base) == fmt.file_bytes_after(*committed(fmt, writes[0], writes[1]), virtual)
    assert os.path.getsize(top) == emptied_bytes(fmt, virtual, writes[1])


def test_qemu_cannot_rebase_a_vmdk_and_neither_does_the_model(tmp_path: Path) -> None:
    """Review 11: the flattened VMDK row described a rebase qemu-img refuses."""
    base = create(tmp_path / "b.vmdk", "vmdk", GiB)
    top = create(tmp_path / "t.vmdk", "vmdk", GiB, backing=base)
    refused = subprocess.run(["qemu-img", "rebase", "-f", "vmdk", "-b", "", str(top)], capture_output=True, text=True)
    assert refused.returncode != 0 and "not supported" in refused.stderr
    fmt = format_by_name("vmdk", GiB)
    with pytest.raises(ValueError, match="cannot change a vmdk image's backing file"):
        rebased(fmt, (np.array([0]), np.array([4096])), [(np.array([0]), np.array([4096]))])


def test_rebase_past_the_first_refcount_table_follows_qemus_runs_of_differing_sectors(tmp_path: Path) -> None:
    """Review 11: 512 B clusters, a 32 MiB base, an overlay of 400 random 4 KiB writes flattened
    (rebase -b ""): the file passes the first refcount table (8 MiB), where its length depends on
    the requests. With QEMU's requests (runs of differing sectors, 2 MiB at a time) the length is
    qemu's; copying each cluster alone comes out short (review 11's larger case: by 95,744 B)."""
    virtual, cluster = 256 * MiB, 512
    fmt = format_by_name("qcow2", virtual, cluster)
    rng = np.random.default_rng(0)
    base_writes = (np.arange(32) * MiB, np.full(32, MiB))
    top_writes = (rng.integers(0, virtual // 4096, 400) * 4096, np.full(400, 4096))
    base = create(tmp_path / "b.qcow2", "qcow2", virtual, cluster_size=str(cluster))
    write_pattern(base, "qcow2", *base_writes, 1)
    top = create(tmp_path / "t.qcow2", "qcow2", virtual, backing=base, cluster_size=str(cluster))
    write_pattern(top, "qcow2", *top_writes, 2)
    _run("qemu-img", "rebase", "-f", "qcow2", "-b", "", str(top))
    assert os.path.getsize(top) == fmt.file_bytes_after(*rebased(fmt, top_writes, [base_writes], virtual), virtual)


def test_a_long_snapshot_name_is_cut_as_qemu_cuts_it(tmp_path: Path) -> None:
    """Review 12: QEMU keeps 255 bytes of a snapshot's name (char[256]); a 5,000-character name
    made the model's table 4,745 bytes too long."""
    virtual, cluster = GiB, 4 * KiB
    fmt = format_by_name("qcow2", virtual, cluster)
    image = create(tmp_path / "s.qcow2", "qcow2", virtual, cluster_size=str(cluster))
    before = (np.array([0]), np.array([4096]))
    write(image, "qcow2", *before)
    name = "n" * 5000
    _run("qemu-img", "snapshot", "-c", name, str(image))
    assert os.path.getsize(image) == fmt.snapshot_file_bytes(before, (np.zeros(0, int), np.zeros(0, int)), virtual,
                                                             name=name)
