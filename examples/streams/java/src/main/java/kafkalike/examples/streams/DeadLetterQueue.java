package kafkalike.examples.streams;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.DeserializationExceptionHandler;
import org.apache.kafka.streams.errors.ErrorHandlerContext;
import org.apache.kafka.streams.errors.ProcessingExceptionHandler;
import org.apache.kafka.streams.processor.api.Record;

/**
 * The dead-letter topic of {@link OrdersDlq}, written by Kafka Streams 3.9's exception handlers
 * (KIP-1033): {@link DeserializationHandler} ({@code default.deserialization.exception.handler},
 * bytes that are no JSON object) and {@link ProcessingHandler} ({@code processing.exception.handler},
 * an exception thrown by a processor: an order with bad values). Both write the failed record's
 * original key and value bytes, its timestamp, and why, in the headers Kafka Streams 4.x's own
 * dead-letter queue (KIP-1034) uses: {@code __streams.errors.exception} (the exception's toString),
 * {@code __streams.errors.message}, {@code __streams.errors.stacktrace}, {@code __streams.errors.topic},
 * {@code __streams.errors.partition}, {@code __streams.errors.offset}; plus {@code
 * kafkalike.dlq.handler} ({@code deserialization} or {@code processing}) and {@code
 * kafkalike.dlq.processor} (the processor node that threw, for processing errors).
 *
 * <p>Exactly once, in 3.9: a handler can only answer CONTINUE or FAIL (KIP-1034, which lets it
 * return records for Streams to write inside its own transaction, came after 3.9), so the
 * records go through a producer of their own, idempotent with acks=all, outside Streams'
 * transaction. What keeps each failed record in the topic once: (1) the handler waits for the
 * write's acknowledgement before it answers CONTINUE, so no input offset is committed before
 * its dead letter is written (nothing lost; a write that fails answers FAIL: the stream thread
 * is replaced and the record read again); (2) every source (topic, partition, offset) already
 * dead-lettered is remembered: read back from the dead-letter topic when the first handler is
 * configured (a restarted app) and added to after each write, so a record processed again after
 * an aborted transaction, a rebalance or a crash is not written twice. This holds for one app
 * instance at a time (the set is per JVM); two instances that both hold a task during a
 * rebalance could both write its record.
 */
public final class DeadLetterQueue {
  /** Streams config key: the dead-letter topic (default {@code orders.DLQ}). */
  public static final String TOPIC_CONFIG = "kafkalike.dlq.topic";
  public static final String HEADER_EXCEPTION = "__streams.errors.exception";
  public static final String HEADER_MESSAGE = "__streams.errors.message";
  public static final String HEADER_STACKTRACE = "__streams.errors.stacktrace";
  public static final String HEADER_TOPIC = "__streams.errors.topic";
  public static final String HEADER_PARTITION = "__streams.errors.partition";
  public static final String HEADER_OFFSET = "__streams.errors.offset";
  public static final String HEADER_HANDLER = "kafkalike.dlq.handler";
  public static final String HEADER_PROCESSOR = "kafkalike.dlq.processor";

  private static DeadLetterQueue instance;

  private final String topic;
  private final KafkaProducer<byte[], byte[]> producer;
  private final Set<String> written = new HashSet<>();

  private DeadLetterQueue(Map<String, ?> streamsConfigs) {
    Object topicConfig = streamsConfigs.get(TOPIC_CONFIG);
    this.topic = topicConfig == null ? "orders.DLQ" : topicConfig.toString();
    String bootstrap = String.valueOf(streamsConfigs.get(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG));
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120_000);
    props.put(ProducerConfig.CLIENT_ID_CONFIG, "dead-letter-queue-" + UUID.randomUUID());
    this.producer = new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
    readBack(bootstrap);
  }

  /** The JVM's dead-letter queue, made (and read back) on the first call. */
  static synchronized DeadLetterQueue of(Map<String, ?> streamsConfigs) {
    if (instance == null) {
      instance = new DeadLetterQueue(streamsConfigs);
    }
    return instance;
  }

  static String source(String topic, int partition, long offset) {
    return topic + "/" + partition + "/" + offset;
  }

  /** Reads the dead-letter topic to its end: the sources already written by an earlier run. */
  private void readBack(String bootstrap) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(60));
      if (infos == null || infos.isEmpty()) {
        throw new IllegalStateException("dead-letter topic " + topic + " does not exist");
      }
      List<TopicPartition> partitions = new ArrayList<>();
      for (PartitionInfo info : infos) {
        partitions.add(new TopicPartition(topic, info.partition()));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> ends = new HashMap<>(consumer.endOffsets(partitions, Duration.ofSeconds(60)));
      long deadline = System.currentTimeMillis() + 120_000;
      while (ends.entrySet().stream().anyMatch(e -> consumer.position(e.getKey()) < e.getValue())) {
        if (System.currentTimeMillis() > deadline) {
          throw new IllegalStateException("could not read " + topic + " to its end " + ends);
        }
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          String t = header(r.headers().lastHeader(HEADER_TOPIC));
          String p = header(r.headers().lastHeader(HEADER_PARTITION));
          String o = header(r.headers().lastHeader(HEADER_OFFSET));
          if (t != null && p != null && o != null) {
            written.add(t + "/" + p + "/" + o);
          }
        }
      }
    }
    System.out.println("dead-letter queue " + topic + ": " + written.size() + " records already written");
  }

  private static String header(Header h) {
    return h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
  }

  /**
   * Writes one failed record to the dead-letter topic and waits for the acknowledgement.
   *
   * @return true when the record is in the topic (now or by an earlier write), false when the
   *     write failed (the handler then answers FAIL)
   */
  synchronized boolean write(ErrorHandlerContext context, byte[] key, byte[] value, Exception exception,
      String handler) {
    String source = source(context.topic(), context.partition(), context.offset());
    if (written.contains(source)) {
      System.out.println("dead-letter queue: " + source + " already written, not again");
      return true;
    }
    RecordHeaders headers = new RecordHeaders();
    StringWriter trace = new StringWriter();
    exception.printStackTrace(new PrintWriter(trace));
    put(headers, HEADER_EXCEPTION, exception.toString());
    put(headers, HEADER_MESSAGE, String.valueOf(exception.getMessage()));
    put(headers, HEADER_STACKTRACE, trace.toString());
    put(headers, HEADER_TOPIC, context.topic());
    put(headers, HEADER_PARTITION, Integer.toString(context.partition()));
    put(headers, HEADER_OFFSET, Long.toString(context.offset()));
    put(headers, HEADER_HANDLER, handler);
    if ("processing".equals(handler)) {
      put(headers, HEADER_PROCESSOR, context.processorNodeId());
    }
    ProducerRecord<byte[], byte[]> record =
        new ProducerRecord<>(topic, null, context.timestamp(), key, value, headers);
    try {
      producer.send(record).get(150, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    } catch (ExecutionException | TimeoutException e) {
      System.err.println("dead-letter queue: writing " + source + " failed: " + e);
      return false;
    }
    written.add(source);
    System.out.println("dead-letter queue: " + source + " -> " + topic + " (" + handler + ": " + exception + ")");
    return true;
  }

  private static void put(RecordHeaders headers, String name, String value) {
    headers.add(name, value.getBytes(StandardCharsets.UTF_8));
  }

  static byte[] bytes(Object o) {
    if (o == null) {
      return null;
    } else if (o instanceof byte[]) {
      return (byte[]) o;
    } else if (o instanceof OrdersDlq.Order) {
      return ((OrdersDlq.Order) o).raw().getBytes(StandardCharsets.UTF_8);
    }
    return o.toString().getBytes(StandardCharsets.UTF_8);
  }

  /** {@code default.deserialization.exception.handler}: the raw record to the dead-letter topic, CONTINUE. */
  public static final class DeserializationHandler implements DeserializationExceptionHandler {
    private DeadLetterQueue queue;

    @Override
    public void configure(Map<String, ?> configs) {
      queue = DeadLetterQueue.of(configs);
    }

    @Override
    public DeserializationHandlerResponse handle(ErrorHandlerContext context, ConsumerRecord<byte[], byte[]> record,
        Exception exception) {
      return queue.write(context, record.key(), record.value(), exception, "deserialization")
          ? DeserializationHandlerResponse.CONTINUE : DeserializationHandlerResponse.FAIL;
    }
  }

  /** {@code processing.exception.handler} (KIP-1033): the failed record to the dead-letter topic, CONTINUE. */
  public static final class ProcessingHandler implements ProcessingExceptionHandler {
    private DeadLetterQueue queue;

    @Override
    public void configure(Map<String, ?> configs) {
      queue = DeadLetterQueue.of(configs);
    }

    @Override
    public ProcessingHandlerResponse handle(ErrorHandlerContext context, Record<?, ?> record, Exception exception) {
      return queue.write(context, bytes(record.key()), bytes(record.value()), exception, "processing")
          ? ProcessingHandlerResponse.CONTINUE : ProcessingHandlerResponse.FAIL;
    }
  }
}
