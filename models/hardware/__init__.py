"""Hardware: the CPU, memory, storage and network of a host (profiles with sources) and their stations."""
