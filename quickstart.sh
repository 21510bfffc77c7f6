#!/usr/bin/env bash
# Set everything up in .venv and run the main job on built-in defaults: results and a report
# land in results/default/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
echo "compiling the simulation kernel (once; about three minutes)"
.venv/bin/python -c "from virtsim.sim.kernel import compile_kernel; compile_kernel()"
.venv/bin/virtsim run --out results/default
echo "report: results/default/report.md"
