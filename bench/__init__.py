"""Benchmarks of the running service against floors measured in the same run."""
