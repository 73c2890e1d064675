"""Benchmarks: the pipeline throughput benchmark and the live-mode latency run (commands, not tests)."""
