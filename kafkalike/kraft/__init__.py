"""KRaft's quorum controller (KIP-500, KIP-631): the control managers and QuorumController.

Layer 2, beside ``controller/`` (the ZooKeeper-era controller) and ``raft/`` (which it drives):
every change is a list of metadata records written through the Raft log, and the state here is
rebuilt only by replaying committed records and snapshots. See docs/kraft.md.
"""
