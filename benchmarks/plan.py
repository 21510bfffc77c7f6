"""The capacity planner at fleet scale: 100,000 guests packed on about 10,000 hosts.

    python benchmarks/plan.py [--services 20] [--guests-per-service 5000]

Prints the time for the whole plan (per-service lowering and vectorized packing) per stack.
Target (issue 6): 10,000 hosts and 100,000 guests in under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import time

from virtsim.experiments.plan import PlanSpec, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--guests-per-service", type=int, default=5000)
    args = parser.parse_args()
    services = [{"name": f"svc{i}", "guests": args.guests_per_service, "app_memory": f"{1 + i % 3}GiB",
                 "workload": {"kind": "web", "rate": f"{20 + 5 * i}/s"}} for i in range(args.services)]
    spec = PlanSpec.model_validate({
        "stacks": [["kvm"], ["docker"]],
        "host_types": [{"name": "small", "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"}}],
        "services": services,
    })
    t0 = time.perf_counter()
    fleet, _ = plan(spec)
    seconds = time.perf_counter() - t0
    for _, row in fleet.iterrows():
        print(f"{row['stack']:>8} on {row['host_type']}: {int(row['hosts']):,} hosts for {int(row['guests']):,} guests"
              f" (bottleneck {row['bottleneck']})")
    print(f"planned in {seconds:.2f} s  (target < 60 s)")


if __name__ == "__main__":
    main()
