"""A simulated business running its cycle of service: demo data, benchmarks, analysis tests."""
