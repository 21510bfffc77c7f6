"""Whether the calibration data shipped in the package is the team's current file.

The package ships ``published.csv`` and its README (``experiments/calibration_data/``) so that
``virtsim calibrate`` runs in any clone. Beside the team's shared folder (``../shared/calibration``
from the repository), the copies must be current: copy them again when the team's file grows.
Not a test: the team's folder is outside the repository, and a test must not depend on it.

Run: ``python scripts/check_team_files.py [SHARED_CALIBRATION_DIR]``; exit status 1 if a copy
differs, 2 if there is no team folder to compare with.
"""

from __future__ import annotations

import sys
from pathlib import Path

from virtsim.experiments.calibrate import PACKAGED_PUBLISHED


def main(argv: list[str]) -> int:
    shared = Path(argv[0]) if argv else Path(__file__).resolve().parents[1].parent / "shared" / "calibration"
    if not shared.is_dir():
        print(f"no team folder at {shared} to compare with (give its path)", file=sys.stderr)
        return 2
    stale = [name for name in ("published.csv", "README.md")
             if (shared / name).read_bytes() != (PACKAGED_PUBLISHED.parent / name).read_bytes()]
    for name in stale:
        print(f"experiments/calibration_data/{name} differs from {shared / name}: copy it again")
    if not stale:
        print(f"experiments/calibration_data/ is the team's {shared} (published.csv, README.md)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
