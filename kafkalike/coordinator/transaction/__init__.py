"""The transaction coordinator (Kafka's kafka.coordinator.transaction, KIP-98): the
``__transaction_state`` records (transaction_log), the transaction state machine
(transaction_metadata), the cache of the partitions this broker leads
(transaction_state_manager), the WriteTxnMarkers sender (transaction_marker_channel_manager),
the API logic (transaction_coordinator) and its kio translation (transaction_apis).
docs/transactions.md, "The coordinator", traces one transaction through them."""
