"""Local supervision of the processes a kafkalike cluster is made of.

process      spawn a detached background process with log + pid file, is-alive, stop by pid
zk_ensemble  a ZooKeeper ensemble of real JVM nodes (ZkEnsemble), used by ``kafkalike zk``,
             ``kafkalike cluster`` and the test fixtures
"""
