// Prints Kafka 3.9's own serialization of a few __transaction_state keys and values as hex
// (MessageUtil.toVersionPrefixedBytes over the generated TransactionLogKey / TransactionLogValue),
// one "<name> <hex>" per line. Run by test_transaction_log_kafka_serde.py with the reference jars:
//   java -cp 'reference/lib/*' tests/coordinator/transaction/TransactionLogSerde.java
import java.util.Arrays;
import org.apache.kafka.common.protocol.MessageUtil;
import org.apache.kafka.coordinator.transaction.generated.TransactionLogKey;
import org.apache.kafka.coordinator.transaction.generated.TransactionLogValue;

public class TransactionLogSerde {
    static String hex(byte[] bytes) {
        StringBuilder s = new StringBuilder();
        for (byte b : bytes) s.append(String.format("%02x", b));
        return s.toString();
    }

    public static void main(String[] args) {
        System.out.println("key " + hex(MessageUtil.toVersionPrefixedBytes((short) 0,
            new TransactionLogKey().setTransactionalId("tx-\u00e9"))));
        for (short v = 0; v <= 1; v++) {
            TransactionLogValue prepare = new TransactionLogValue().setProducerId(1234567890123L)
                .setProducerEpoch((short) 7).setTransactionTimeoutMs(60000).setTransactionStatus((byte) 2)
                .setTransactionPartitions(Arrays.asList(
                    new TransactionLogValue.PartitionsSchema().setTopic("orders").setPartitionIds(Arrays.asList(0, 3)),
                    new TransactionLogValue.PartitionsSchema().setTopic("__consumer_offsets")
                        .setPartitionIds(Arrays.asList(17))))
                .setTransactionLastUpdateTimestampMs(1700000000123L).setTransactionStartTimestampMs(1700000000000L);
            System.out.println("prepare" + v + " " + hex(MessageUtil.toVersionPrefixedBytes(v, prepare)));
            TransactionLogValue empty = new TransactionLogValue().setProducerId(5).setProducerEpoch((short) 0)
                .setTransactionTimeoutMs(900000).setTransactionStatus((byte) 0).setTransactionPartitions(null)
                .setTransactionLastUpdateTimestampMs(42).setTransactionStartTimestampMs(-1);
            System.out.println("empty" + v + " " + hex(MessageUtil.toVersionPrefixedBytes(v, empty)));
        }
    }
}
