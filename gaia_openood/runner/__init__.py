"""The OpenOOD benchmark runner (in progress): benchmarks, options, results and leaderboard files."""
