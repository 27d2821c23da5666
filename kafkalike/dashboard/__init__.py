"""The teaching dashboard (``kafkalike dashboard``): one live web page showing a local
cluster's ZooKeeper ensemble, brokers and controller, partition table, consumer groups and a
timeline of cause and effect, with kill -9 / restart controls.

A CLIENT of the cluster at the tools layer (beside chaos/ and bench/): it reads ZooKeeper
through kafkalike.coordination, speaks the Kafka protocol through kafkalike.client and acts on
processes through kafkalike.cluster.local_cluster.LocalCluster; no broker module imports it.

Modules: ``state`` (snapshots and the timeline diff), ``app`` (the starlette ASGI app, its
routes and the page), ``server`` (hypercorn's trio worker plus the polling loop).
"""
