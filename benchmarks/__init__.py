"""Speed benchmarks (``make benchmark``): JSON results in ``results/``, a table in README.md."""
