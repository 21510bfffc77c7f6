"""A Markdown report of a run folder, rendered from its saved tables with Jinja2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from jinja2 import Environment, StrictUndefined

from experiments.outputs import atomic_write
from experiments.plots import plot_attribution, plot_latency

__all__ = ["write_run_report"]

_TEMPLATE = """# {{ name }}

{{ description }}

Simulated {{ duration }} s per run ({{ warmup }} s warm-up left out), {{ reps }} replications,
seed {{ seed }}. Intervals are 95% Student-t confidence intervals over replications.

## The answer

| stack | guest | throughput (req/s) | mean latency (µs) | p99 latency (µs) | p99 vs first |
|---|---|---:|---:|---:|---:|
{% for row in rows -%}
{{ row }}
{% endfor %}

![latency by stack](latency.png)

![mean latency by layer](attribution_mean.png)

![tail latency by layer](attribution_tail.png)

## Profiles used

{% for p in profiles -%}
- `{{ p }}`
{% endfor %}
Every profile parameter names its source (`virtsim profiles` lists them); `provenance.json` holds
the validated scenario, the seeds and the package versions.
"""


def _metric(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = summary[(summary["metric"] == metric) & (summary["layer"] == "all") & (summary["station"] == "all")]
    return rows.set_index(["variant", "guest"])


def write_run_report(out_dir: Path) -> Path:
    """Write ``report.md`` and its figures into ``out_dir`` from ``summary.csv`` and ``provenance.json``."""
    out_dir = Path(out_dir)
    summary = pd.read_csv(out_dir / "summary.csv")
    prov = json.loads((out_dir / "provenance.json").read_text())
    plot_latency(summary, out_dir / "latency.png")
    plot_attribution(summary, out_dir / "attribution_mean.png", "time_mean_s")
    plot_attribution(summary, out_dir / "attribution_tail.png", "tail_time_mean_s")
    tput, mean, p99 = (_metric(summary, m) for m in ("throughput_rps", "latency_mean_s", "latency_p99_s"))
    rows: list[str] = []
    first: dict[str, float] = {}
    for key in mean.index:
        variant, guest = key
        first.setdefault(guest, float(p99.loc[key, "mean"]))
        cells = [
            variant,
            guest,
            f"{tput.loc[key, 'mean']:.1f}",
            f"{mean.loc[key, 'mean'] * 1e6:.1f} ± {(mean.loc[key, 'ci_high'] - mean.loc[key, 'mean']) * 1e6:.1f}",
            f"{p99.loc[key, 'mean'] * 1e6:.1f} ± {(p99.loc[key, 'ci_high'] - p99.loc[key, 'mean']) * 1e6:.1f}",
            f"{float(p99.loc[key, 'mean']) / first[guest]:.2f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    scenario = prov["scenario"]
    profiles = sorted({e if isinstance(e, str) else e["profile"]
                       for g in scenario["guests"] for e in g["stack"]}
                      | {e if isinstance(e, str) else e["profile"]
                         for s in (scenario.get("compare") or {}).get("stacks", []) for e in s})
    text = Environment(undefined=StrictUndefined, autoescape=False).from_string(_TEMPLATE).render(
        name=scenario["name"], description=scenario["description"], duration=scenario["run"]["duration"],
        warmup=scenario["run"]["warmup"], reps=scenario["run"]["replications"], seed=scenario["run"]["seed"],
        rows=rows, profiles=profiles,
    )
    return atomic_write(out_dir / "report.md", lambda t: t.write_text(text, encoding="utf-8"))
