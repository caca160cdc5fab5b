"""Closed-loop benchmarks: replay real data sets as oracles and score planners on them.

`loop benchmark campaign SPEC...` runs strategies (random, the engine's model-based strategies and,
with the `bench` extra, BayBE and Ax) for many seeds and reports the Top%, enhancement and
acceleration factors of Liang et al. 2021 with 95% confidence intervals.
"""
