"""Benchmarks: the pipeline throughput benchmark and the live-mode latency run (commands, not tests)."""

# What the load benches simulate: a Tuesday's morning peak in Shenzhen, as the fixture. The generator at a
# rate stamps send time, but the hour sets the mix of kinds (at 06:00 a few thousand payments and taps in
# six million events, at 08:00 hundreds of thousands), so runs at other hours do not compare.
PEAK_START = "2026-11-17T08:00:00+08:00"
