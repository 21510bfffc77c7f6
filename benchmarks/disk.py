"""Writes accounted per second: one million random 4 KiB writes into a 20 GiB qcow2 overlay.

    python benchmarks/disk.py [--writes N]

Times the whole accounting (touched clusters, L2 tables, refcount blocks, file size) over the
write arrays, best of five, and prints the rate. Target (issue 3): at least 5 million writes/s.
Also times unaligned 6 KiB writes, which span clusters and take the slower expanding path.
Then, per format, the peak memory (tracemalloc, which sees numpy's buffers) of the length and
the physical size of a 1 TiB disk after 200,000 random 4 KiB writes all over it. Target
(issue 12): under 64 MiB for any format.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from virtsim.models.disks.allocation import touched_units
from virtsim.models.disks.formats import FORMAT_NAMES, format_by_name

GiB = 2**30


def account(offsets: np.ndarray, sizes: np.ndarray, virtual: int) -> int:
    fmt = format_by_name("qcow2", virtual)
    return fmt.file_bytes(touched_units(offsets, sizes, fmt.unit_bytes), virtual, differencing=True)


def best(offsets: np.ndarray, sizes: np.ndarray, virtual: int, repeats: int = 5) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        size = account(offsets, sizes, virtual)
        times.append(time.perf_counter() - t0)
    return min(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1_000_000)
    args = parser.parse_args()
    virtual, n = 20 * GiB, args.writes
    rng = np.random.default_rng(0)
    aligned = rng.integers(0, virtual // 4096, n) * 4096
    seconds, size = best(aligned, np.full(n, 4096), virtual)
    print(f"aligned 4 KiB random : {n / seconds:14,.0f} writes/s  ({seconds * 1e3:.1f} ms, "
          f"overlay {size / GiB:.2f} GiB)")
    unaligned = rng.integers(0, virtual - 8192, n)
    seconds, size = best(unaligned, np.full(n, 6144), virtual)
    print(f"unaligned 6 KiB      : {n / seconds:14,.0f} writes/s  ({seconds * 1e3:.1f} ms, "
          f"overlay {size / GiB:.2f} GiB)")
    print("target: >= 5,000,000 writes/s for the aligned case")
    memory()


def memory(writes: int = 200_000) -> None:
    """Peak memory of accounting a 1 TiB disk with sparse writes, per format."""
    virtual = 2**40
    rng = np.random.default_rng(1)
    offsets = rng.integers(0, virtual // 4096, writes) * 4096
    sizes = np.full(writes, 4096)
    input_mib = (offsets.nbytes + sizes.nbytes) / 2**20
    for name in FORMAT_NAMES:
        fmt = format_by_name(name, virtual)
        tracemalloc.start()
        length = fmt.file_bytes_after(offsets, sizes, virtual, differencing=True)
        physical = fmt.physical_bytes_after(offsets, sizes, virtual, differencing=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"1 TiB {name:6s}: peak {peak / 2**20:6.1f} MiB beyond the {input_mib:.1f} MiB of writes "
              f"(length {length / GiB:8.2f} GiB, on the host {physical / GiB:6.2f} GiB)")
    print("target: < 64 MiB for every format")


if __name__ == "__main__":
    main()
