"""Benchmarks: ratios measured side by side in one run (ours / the raw engine).

Absolute times on shared machines drift; a ratio of two things measured in the same
process, one right after the other, is what these report.
"""
