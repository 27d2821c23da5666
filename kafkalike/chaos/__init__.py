"""Chaos testing: break a ZooKeeper-era cluster under load and judge the recorded history.

history (event types, JSON-lines writer/reader), checker (the verdict from a history
alone), workload (keyed sequenced producers and a consumer group recording the history,
the final drain), faults (every fault through one interface with a heal; the nemesis and
its seeded random schedule), local (the backend on this machine's processes: signals,
restarts, iptables on loopback), scenarios (the library), runner (one run end to end),
report (the report directory and its plot). See docs/chaos.md.
"""
