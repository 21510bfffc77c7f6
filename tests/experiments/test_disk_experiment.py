"""The disk experiment end to end: its table, its plots, and its spec errors."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.cli import main
from experiments.disk import DiskSpec, run_disk

SMALL = DiskSpec.model_validate({"guests": 3, "virtual": "2GiB", "base_used": "256MiB", "growth_writes": 2000,
                                 "pattern": {"kind": "random", "writes": 500}})


def test_the_table_reproduces_the_seed_example_and_orders_the_formats() -> None:
    table = run_disk(SMALL)
    seed = table[table["experiment"] == "seed-example"].set_index(["system", "measure"])["bytes"]
    assert seed[("host", "linked_clones")] == 42e9 and seed[("host", "full_clones")] == 82e9
    chains = table[(table["experiment"] == "image-chain") & (table["measure"] == "per_guest_bytes")]
    per_guest = chains.set_index("system")["bytes"]
    # Random 4 KiB writes: the larger the unit, the more each guest's differencing disk holds.
    assert per_guest["qcow2"] < per_guest["vdi"] < per_guest["vhdx"]
    amp = table[(table["experiment"] == "amplification") & (table["measure"] == "allocated_bytes")]
    amp = amp.set_index("system")["bytes"]
    assert amp["qcow2"] == 65536 and amp["vhdx"] == 2**21 and amp["overlay2 (64 MiB file)"] == 64 * 2**20
    assert amp["btrfs (64 MiB file)"] == 4096


def test_growth_never_shrinks() -> None:
    growth = run_disk(SMALL).query("experiment == 'growth'").copy()
    growth["n"] = growth["measure"].str.split("@").str[1].astype(int)
    for _, g in growth.groupby("system"):
        assert g.sort_values("n")["bytes"].is_monotonic_increasing


def test_cli_writes_disk_csv_and_plots(tmp_path) -> None:
    spec = tmp_path / "disk.toml"
    spec.write_text('[disk]\nguests = 2\nvirtual = "1GiB"\nbase_used = "64MiB"\ngrowth_writes = 500\n'
                    'pattern = { kind = "zipf", writes = 300 }\n')
    assert main(["disk", str(spec), "--out", str(tmp_path / "o")]) == 0
    table = pd.read_csv(tmp_path / "o" / "disk.csv")
    assert list(table.columns) == ["experiment", "system", "guests", "measure", "bytes"]
    for png in ("seed_example", "guests_by_format", "growth", "amplification"):
        assert (tmp_path / "o" / f"{png}.png").stat().st_size > 10_000


@pytest.mark.parametrize("body, needle", [
    ('[disk]\nformats = ["qcow3"]\n', "disk.formats[0]: Input should be 'qcow2'"),
    ('[disk]\nvirtual = "20 parsecs"\n', "virtual"),
    ('[disk]\npattern = { kind = "spiral" }\n', "pattern.kind"),
    ('[disk]\nguestz = 3\n', "guestz: unknown key"),
    ('[dsk]\nguests = 3\n', "unknown top-level key or table 'dsk'"),  # the defaults ran instead
])
def test_bad_disk_specs_name_the_field(tmp_path, capsys, body: str, needle: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(body)
    assert main(["disk", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
