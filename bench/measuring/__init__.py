"""Measuring one run: a fresh subprocess per run, its peak memory (RSS sampled, memray, a kernel memory
container), the machine, fidelity against the service, and the commands built on one run (run, compare's inputs,
flat-memory, smallest-container, sections, hostile, same-as-service). Uses the library only."""
