"""The OpenOOD benchmark runner (in progress): benchmarks, options, results, leaderboard files,
preflight checks, the scoped device shim and the fingerprinted cache."""
