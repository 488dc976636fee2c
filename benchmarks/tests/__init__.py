"""Tests of the developer tools (run by ``make test``: ``benchmarks`` is in pytest's testpaths)."""
