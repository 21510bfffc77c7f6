"""The overlay2 model against a real overlayfs mount, on tmpfs, ext4, XFS with reflink and btrfs.

A lower directory plays the image; the test writes, appends, chmods, deletes and creates files
in the merged directory, then compares the upper directory's apparent size (sum of st_size of
regular files, what ``docker ps -s`` shows) and allocated size with the model. On tmpfs and ext4
the allocated size is st_blocks; on XFS with reflink and btrfs, copy-up clones the file, st_blocks counts
the shared extents too, so the test sums the extents ``filefrag`` does not flag as shared: the
blocks this container's layer added.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from virtsim.models.disks.layers import FileOps, HostFs, ImageLayer, Op, writable_layer_usage

pytestmark = pytest.mark.real


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


# ext4 as a host's: 4 KiB blocks and 256-byte inodes (mkfs's "small" type for this 320 MiB image
# would take 1 KiB blocks and 128-byte inodes, whose overlay xattrs then need blocks of their own)
MKFS = {"ext4": ["mkfs.ext4", "-q", "-F", "-b", "4096", "-I", "256"],
        "xfs-reflink": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"], "btrfs": ["mkfs.btrfs", "-q", "-f"]}
REFLINK = {"xfs-reflink", "btrfs"}


@pytest.fixture(params=["tmpfs", "ext4", "xfs-reflink", "btrfs"])
def overlay(request, tmp_path: Path):
    """(lower, upper, merged) on a private file system; skipped where mounting is not allowed."""
    root = tmp_path / "fs"
    root.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root and mount(2) to mount file systems and overlayfs")
    if request.param == "tmpfs":
        mounted = _mount("-t", "tmpfs", "-o", "size=256m", "virtsim-test", str(root))
    else:
        tool = MKFS[request.param]
        if shutil.which(tool[0]) is None:
            pytest.fail(f"{tool[0]} is not installed (.ci/run installs e2fsprogs and xfsprogs)")
        image = tmp_path / "fs.img"
        with image.open("wb") as f:
            f.truncate(320 * 2**20)
        subprocess.run([*tool, str(image)], check=True, capture_output=True)
        mounted = _mount("-o", "loop", str(image), str(root))
    if not mounted:
        pytest.skip(f"{request.param} cannot be mounted here")
    dirs = {name: root / name for name in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir()
    try:
        yield request.param, dirs
    finally:
        subprocess.run(["umount", str(dirs["merged"])], capture_output=True)
        subprocess.run(["umount", str(root)], capture_output=True)


def _unshared_bytes(path: Path) -> int:
    """Bytes of the file's extents that no other file shares (``filefrag -v`` flags), leaving out
    XFS's speculative preallocation past the end of a file being appended to (unwritten extents
    past EOF, which XFS frees when the file is evicted or its background scan runs)."""
    out = subprocess.run(["filefrag", "-v", "-b4096", str(path)], check=True, capture_output=True, text=True).stdout
    size, total = path.stat().st_size, 0
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0].strip().isdigit():
            start, length, flags = int(parts[1].split("..")[0]), int(parts[3].split()[0]), parts[-1]
            if "shared" in flags or "inline" in flags or ("unwritten" in flags and start * 4096 >= size):
                continue  # shared with the lower file, in the metadata (btrfs inline), or past EOF
            total += length * 4096
    return total


def _usage(upper: Path, reflink: bool = False) -> tuple[int, int]:
    apparent = allocated = 0
    for entry in upper.rglob("*"):
        st = entry.lstat()
        if stat.S_ISREG(st.st_mode):
            apparent += st.st_size
            allocated += _unshared_bytes(entry) if reflink else st.st_blocks * 512
    return apparent, allocated


def _mounted_over(overlay: dict, sizes: np.ndarray, rng: np.random.Generator, extra: str = "") -> list[str]:
    """Lower files of ``sizes`` (random bytes) named f0, f1, ..., overlayfs mounted over them
    (``extra`` mount options); their names. Skips the test if overlayfs cannot be mounted."""
    names = [f"f{i}" for i in range(len(sizes))]
    for name, size in zip(names, sizes, strict=True):
        (overlay["lower"] / name).write_bytes(rng.bytes(int(size)))
    lower, upper, work, merged = (str(overlay[k]) for k in ("lower", "upper", "work", "merged"))
    if not _mount("-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}{extra}",
                  merged):
        pytest.skip(f"overlayfs{' with ' + extra.lstrip(',') if extra else ''} cannot be mounted here")
    return names


def test_overlay2_copy_up_matches_the_kernel(overlay) -> None:
    fs_name, overlay = overlay
    rng = np.random.default_rng(7)
    sizes = np.concatenate([[1, 4095, 4096, 4097, 100_000, 3 * 2**20], rng.integers(1, 300_000, 24)])
    names = _mounted_over(overlay, sizes, rng)
    m = overlay["merged"]
    ops: list[tuple[int, int, int, int]] = []

    def write(i: int, offset: int, size: int) -> None:
        with open(m / names[i], "r+b") as f:
            f.seek(offset)
            f.write(b"x" * size)
        ops.append((Op.WRITE, i, offset, size))

    def append(i: int, size: int) -> None:
        with open(m / names[i], "ab") as f:
            f.write(b"y" * size)
        ops.append((Op.APPEND, i, 0, size))

    def create(size: int) -> int:
        names.append(f"new{len(names)}")
        (m / names[-1]).write_bytes(b"z" * size)
        ops.append((Op.CREATE, -1, 0, size))
        return len(names) - 1

    write(4, 10, 4)  # a 4-byte write copies up the whole 100 kB file
    write(4, 50_000, 10)  # a second write to a copied-up file copies nothing more
    write(5, 3 * 2**20 - 2, 8)  # writing past the end grows the file
    append(1, 2)
    append(7, 5000)
    os.chmod(m / names[8], 0o600)
    ops.append((Op.CHMOD, 8, 0, 0))
    for i in (9, 10, 11):
        os.remove(m / names[i])
        ops.append((Op.DELETE, i, 0, 0))
    write(12, 0, 1)
    os.remove(m / names[12])  # copied up, then deleted: only a whiteout remains
    ops.append((Op.DELETE, 12, 0, 0))
    new = create(12_345)
    append(new, 100)
    gone = create(50_000)
    os.remove(m / names[gone])
    ops.append((Op.DELETE, gone, 0, 0))
    os.sync()

    reflink = fs_name in REFLINK
    host_fs = HostFs(block_bytes=os.statvfs(overlay["upper"]).f_bsize, reflink=reflink,
                     clone_shares_tail=fs_name == "btrfs")
    model = writable_layer_usage("overlay2", [ImageLayer("sha256:lower", sizes)], FileOps.of(ops), host_fs)
    assert _usage(overlay["upper"], reflink) == (model.apparent_bytes, model.allocated_bytes)
    whiteouts = [p for p in overlay["upper"].iterdir() if stat.S_ISCHR(p.lstat().st_mode)]
    assert {p.name for p in whiteouts} == {names[i] for i in (9, 10, 11, 12)}


@pytest.mark.parametrize("metacopy", [False, True], ids=["metacopy-off", "metacopy-on"])
def test_truncating_opens_and_metadata_only_copy_up_match_the_kernel(overlay, metacopy: bool) -> None:
    """Opening a lower file with O_TRUNC copies it up without its data; a write after a truncate
    starts the file over; with ``metacopy=on`` a chmod copies up the metadata and the size, and
    no data until the file is written."""
    fs_name, overlay = overlay
    rng = np.random.default_rng(11)
    sizes = np.array([100_000, 200_000, 30_000, 50_000, 70_001, 9_000, 4_096])
    names = _mounted_over(overlay, sizes, rng, ",metacopy=on,redirect_dir=on" if metacopy else "")
    m = overlay["merged"]
    with open(m / names[0], "wb") as f:  # O_TRUNC, then 5,000 new bytes
        f.write(b"a" * 5000)
    with open(m / names[1], "wb") as f:  # O_TRUNC ...
        pass
    with open(m / names[1], "ab") as f:  # ... then an append to the empty file
        f.write(b"b" * 10)
    with open(m / names[2], "r+b") as f:  # a write copies up all 30,000 bytes ...
        f.write(b"c" * 10)
    with open(m / names[2], "wb") as f:  # ... which a truncating open empties again
        f.write(b"c" * 100)
    open(m / names[3], "wb").close()  # emptied: the upper file is 0 bytes
    os.chmod(m / names[4], 0o600)  # metacopy: size and metadata only
    os.chmod(m / names[5], 0o600)
    with open(m / names[5], "r+b") as f:  # written after the chmod: the data comes up too
        f.write(b"d" * 3)
    os.sync()
    ops = [(Op.TRUNCATE, 0, 0, 0), (Op.WRITE, 0, 0, 5000), (Op.TRUNCATE, 1, 0, 0), (Op.APPEND, 1, 0, 10),
           (Op.WRITE, 2, 0, 10), (Op.TRUNCATE, 2, 0, 0), (Op.WRITE, 2, 0, 100), (Op.TRUNCATE, 3, 0, 0),
           (Op.CHMOD, 4, 0, 0), (Op.CHMOD, 5, 0, 0), (Op.WRITE, 5, 0, 3)]
    reflink = fs_name in REFLINK
    host_fs = HostFs(block_bytes=os.statvfs(overlay["upper"]).f_bsize, reflink=reflink,
                     clone_shares_tail=fs_name == "btrfs", inline_bytes=2048 if fs_name == "btrfs" else 0,
                     metacopy_xattr_bytes=4096 if fs_name == "ext4" else 0)
    model = writable_layer_usage("overlay2", [ImageLayer("sha256:lower", sizes)], FileOps.of(ops), host_fs,
                                 metacopy=metacopy)
    assert _usage(overlay["upper"], reflink) == (model.apparent_bytes, model.allocated_bytes)
    assert model.apparent_bytes == 5000 + 10 + 100 + 0 + 70_001 + 9_000  # the sizes a user sees


@pytest.mark.parametrize("seed", range(3))
def test_small_files_written_through_the_overlay_match_the_kernel(overlay, seed: int) -> None:
    """Review 11: on btrfs a lower file of up to 2 KiB is inline, its clone too, and a small write
    or append that leaves it within 2 KiB takes no block. Seeded writes and appends of 1-600 B
    into lower files of 100 B - 5 KB, the file system as ``virtsim disk`` describes it."""
    fs_name, overlay = overlay
    rng = np.random.default_rng(40 + seed)
    sizes = rng.integers(100, 5000, 16)
    names = _mounted_over(overlay, sizes, rng)
    m = overlay["merged"]
    ops: list[tuple[int, int, int, int]] = []
    current = [int(s) for s in sizes]
    for _ in range(24):
        i, size = int(rng.integers(0, len(names))), int(rng.integers(1, 600))
        if rng.random() < 0.5:
            offset = int(rng.integers(0, current[i]))
            with open(m / names[i], "r+b") as f:
                f.seek(offset)
                f.write(b"x" * size)
            ops.append((Op.WRITE, i, offset, size))
            current[i] = max(current[i], offset + size)
        else:
            with open(m / names[i], "ab") as f:
                f.write(b"y" * size)
            ops.append((Op.APPEND, i, 0, size))
            current[i] += size
    os.sync()
    from virtsim.experiments.disk import HostFsSpec

    host_fs = HostFsSpec.model_validate({"kind": fs_name, "block": os.statvfs(overlay["upper"]).f_bsize}).host_fs()
    model = writable_layer_usage("overlay2", [ImageLayer("sha256:lower", sizes)], FileOps.of(ops), host_fs)
    assert _usage(overlay["upper"], fs_name in REFLINK) == (model.apparent_bytes, model.allocated_bytes)


@pytest.mark.parametrize("redirect_dir, metacopy", [(False, False), (True, False), (False, True)],
                         ids=["redirect_dir-off", "redirect_dir-on", "metacopy-on"])
@pytest.mark.parametrize("seed", range(4))
def test_renaming_a_lower_directory_copies_its_files_unless_redirect_dir_is_on(overlay, redirect_dir: bool,
                                                                               metacopy: bool, seed: int) -> None:
    """Seeded writes, deletes and ``mv`` of lower directories (the tool a container runs): with
    redirect_dir off (the kernel's default, and Docker's) rename(2) fails with EXDEV and ``mv``
    copies each file across (GNU mv 9 clones it on XFS with reflink and btrfs); with it on only
    the directory is copied up; metacopy=on turns redirect_dir on (review 31: the model kept it
    off). Which files move, the order of the ops and the file system vary."""
    fs_name, overlay = overlay
    rng = np.random.default_rng(60 + seed)
    sizes = rng.integers(1, 200_000, 30)
    directories = rng.integers(0, 5, sizes.size)
    lower = overlay["lower"]
    paths = []
    for i, (size, d) in enumerate(zip(sizes.tolist(), directories.tolist(), strict=True)):
        (lower / f"d{d}").mkdir(exist_ok=True)
        paths.append(f"d{d}/f{i}")
        (lower / paths[-1]).write_bytes(rng.bytes(size))
    _mounted_over(overlay, np.zeros(0, dtype=np.int64), rng,
                  ",redirect_dir=on" if redirect_dir else (",metacopy=on" if metacopy else ""))
    m = overlay["merged"]
    where = {d: f"d{d}" for d in range(5)}  # each directory's current name
    ops: list[tuple[int, int, int, int]] = []
    for step in range(12):
        i = int(rng.integers(0, sizes.size))
        path = m / where[int(directories[i])] / f"f{i}"
        kind = ["write", "delete", "rename"][step % 3]
        if kind == "rename":
            d = int(rng.integers(0, 5))
            new = f"{where[d]}-moved"
            subprocess.run(["mv", str(m / where[d]), str(m / new)], check=True, capture_output=True)
            where[d] = new
            ops.append((Op.RENAME_DIR, d, 0, 0))
        elif not path.exists():
            continue
        elif kind == "write":
            offset = int(rng.integers(0, int(sizes[i])))
            with open(path, "r+b") as f:
                f.seek(offset)
                f.write(b"x" * 100)
            ops.append((Op.WRITE, i, offset, 100))
        else:
            path.unlink()
            ops.append((Op.DELETE, i, 0, 0))
    os.sync()
    from virtsim.experiments.disk import HostFsSpec

    host_fs = HostFsSpec.model_validate({"kind": fs_name, "block": os.statvfs(overlay["upper"]).f_bsize}).host_fs()
    image = [ImageLayer("sha256:lower", sizes, directories)]
    model = writable_layer_usage("overlay2", image, FileOps.of(ops), host_fs, metacopy=metacopy,
                                 redirect_dir=redirect_dir)
    assert _usage(overlay["upper"], fs_name in REFLINK) == (model.apparent_bytes, model.allocated_bytes)
    if not (redirect_dir or metacopy) and any(op[0] == Op.RENAME_DIR for op in ops) and fs_name not in REFLINK:
        plain = writable_layer_usage("overlay2", image, FileOps.of(ops), host_fs, redirect_dir=True)
        assert model.allocated_bytes > plain.allocated_bytes  # the copies cost what the files hold
