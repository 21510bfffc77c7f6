"""Workloads: a generic request workload (arrivals and demands) and named benchmarks lowered to one."""
