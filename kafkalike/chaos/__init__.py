"""Chaos testing: the operation history (history), the checker that judges it (checker).

The workload, the fault library and the backends build on these two modules; see
docs/chaos.md.
"""
