package kafkalike.examples.streams;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The Black Belt task "a fault-tolerant event-driven system using Kafka Streams + DLQs"
 * (docs/tutorials/streams-dlq.md): per-customer order totals with exactly-once, poison records
 * to a dead-letter topic.
 *
 * <p>Reads {@code orders} (key: order id; value: JSON {@code {"order_id", "customer", "quantity",
 * "amount_cents"}}). A value that is not a JSON object fails in the source's deserializer and goes
 * to the dead-letter topic through {@link DeadLetterQueue.DeserializationHandler}; an order with bad
 * values (customer missing or empty, quantity not a positive integer, amount_cents not an integer
 * &ge; 0) makes the {@code validate-order} processor throw {@link InvalidOrderException}, and
 * KIP-1033's {@code processing.exception.handler} ({@link DeadLetterQueue.ProcessingHandler})
 * sends it there. Good orders are re-keyed by customer (repartition topic {@code
 * <app>-orders-by-customer-repartition}) and summed in a store backed by a changelog topic; every
 * change of a customer's totals goes to the output topic: key customer, value {@code {"customer",
 * "orders", "amount_cents"}}. The record cache is off, so each good order yields one update: with
 * exactly_once_v2 a customer's updates read with read_committed have orders = 1, 2, ..., n.
 *
 * <p>Arguments: {@code --bootstrap-server B --application-id ID --state-dir D} [{@code --input
 * orders}] [{@code --output customer-totals}] [{@code --dlq orders.DLQ}] [{@code --guarantee
 * exactly_once_v2|at_least_once}] [{@code --replication-factor 3}] [{@code --commit-interval-ms
 * 100}] (Kafka Streams' default under exactly-once; longer leaves more records uncommitted when
 * the app is killed, so more are processed again after its restart).
 */
public final class OrdersDlq {
  static final ObjectMapper JSON =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  private OrdersDlq() {}

  /** An order as read: its bytes as text (for the dead-letter topic) and the JSON object. */
  public record Order(String raw, JsonNode json) {}

  /** An order that passed {@link #validate}. */
  public record ValidOrder(String customer, long amountCents) {}

  /** What {@code validate-order} throws for an order with bad values. */
  public static final class InvalidOrderException extends RuntimeException {
    InvalidOrderException(String message) {
      super(message);
    }
  }

  /** The value deserializer: bytes that are a JSON object, else SerializationException. */
  public static final class OrderDeserializer implements Deserializer<Order> {
    @Override
    public Order deserialize(String topic, byte[] data) {
      if (data == null) {
        return null;
      }
      String raw = new String(data, StandardCharsets.UTF_8);
      JsonNode json;
      try {
        json = JSON.readTree(raw);
      } catch (JsonProcessingException e) {
        throw new SerializationException("not JSON: " + e.getOriginalMessage(), e);
      }
      if (json == null || !json.isObject()) {
        throw new SerializationException("not a JSON object");
      }
      return new Order(raw, json);
    }
  }

  /** The checks of an order's values; throws InvalidOrderException naming the first bad field. */
  static ValidOrder validate(Order order) {
    if (order == null) {
      throw new InvalidOrderException("no value");
    }
    JsonNode customer = order.json().get("customer");
    if (customer == null || !customer.isTextual() || customer.asText().isEmpty()) {
      throw new InvalidOrderException("customer missing or empty");
    }
    JsonNode quantity = order.json().get("quantity");
    if (quantity == null || !quantity.isIntegralNumber() || quantity.asLong() <= 0) {
      throw new InvalidOrderException("quantity must be a positive integer, got " + quantity);
    }
    JsonNode amount = order.json().get("amount_cents");
    if (amount == null || !amount.isIntegralNumber() || amount.asLong() < 0) {
      throw new InvalidOrderException("amount_cents must be an integer >= 0, got " + amount);
    }
    return new ValidOrder(customer.asText(), amount.asLong());
  }

  static Map<String, String> parseArgs(String[] args) {
    Map<String, String> opts = new HashMap<>();
    opts.put("input", "orders");
    opts.put("output", "customer-totals");
    opts.put("dlq", "orders.DLQ");
    opts.put("guarantee", StreamsConfig.EXACTLY_ONCE_V2);
    opts.put("replication-factor", "3");
    opts.put("commit-interval-ms", "100");
    for (int i = 0; i < args.length; i += 2) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --name value pairs, got " + args[i]);
      }
      opts.put(args[i].substring(2), args[i + 1]);
    }
    for (String required : new String[] {"bootstrap-server", "application-id", "state-dir"}) {
      if (!opts.containsKey(required)) {
        throw new IllegalArgumentException("--" + required + " is required");
      }
    }
    return opts;
  }

  static Topology topology(String input, String output) {
    Serde<Order> orderSerde = Serdes.serdeFrom(
        (Serializer<Order>) (topic, order) -> order == null ? null : order.raw().getBytes(StandardCharsets.UTF_8),
        new OrderDeserializer());
    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), orderSerde).withName("orders-source"))
        .mapValues(OrdersDlq::validate, Named.as("validate-order"))
        .map((orderId, order) -> KeyValue.pair(order.customer(), order.amountCents()), Named.as("key-by-customer"))
        .groupByKey(Grouped.with("orders-by-customer", Serdes.String(), Serdes.Long()))
        .aggregate(() -> "0 0",
            (customer, amount, totals) -> {
              String[] parts = totals.split(" ");
              return (Long.parseLong(parts[0]) + 1) + " " + (Long.parseLong(parts[1]) + amount);
            },
            Named.as("sum-per-customer"),
            Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("customer-totals")
                .withKeySerde(Serdes.String()).withValueSerde(Serdes.String()))
        .toStream(Named.as("totals-changes"))
        .mapValues((customer, totals) -> {
          String[] parts = totals.split(" ");
          ObjectNode value = JSON.createObjectNode();
          value.put("customer", customer);
          value.put("orders", Long.parseLong(parts[0]));
          value.put("amount_cents", Long.parseLong(parts[1]));
          return value.toString();
        }, Named.as("totals-as-json"))
        .to(output, Produced.with(Serdes.String(), Serdes.String()).withName("totals-sink"));
    return builder.build();
  }

  public static void main(String[] args) throws InterruptedException {
    Map<String, String> opts = parseArgs(args);
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, opts.get("application-id"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("bootstrap-server"));
    props.put(StreamsConfig.STATE_DIR_CONFIG, opts.get("state-dir"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, opts.get("guarantee"));
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, Integer.parseInt(opts.get("replication-factor")));
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(opts.get("commit-interval-ms")));
    props.put(StreamsConfig.DEFAULT_DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG,
        DeadLetterQueue.DeserializationHandler.class);
    props.put(StreamsConfig.PROCESSING_EXCEPTION_HANDLER_CLASS_CONFIG, DeadLetterQueue.ProcessingHandler.class);
    props.put(DeadLetterQueue.TOPIC_CONFIG, opts.get("dlq"));
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // A member killed with -9 leaves the group after this long, not the default 45 s.
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 10000);
    Topology topology = topology(opts.get("input"), opts.get("output"));
    System.out.println(topology.describe());

    KafkaStreams streams = new KafkaStreams(topology, props);
    CountDownLatch done = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      System.out.println("state " + before + " -> " + now);
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
        done.countDown();
      }
    });
    streams.setUncaughtExceptionHandler(e -> {
      System.err.println("uncaught " + e);
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
          .REPLACE_THREAD;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      done.countDown();
    }));
    streams.start();
    done.await();
    streams.close(Duration.ofSeconds(30));
    System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
  }
}
