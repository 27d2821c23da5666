package kafkalike.examples.streams;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * The seed's "count how many orders were placed in the last 10 minutes" as a Kafka Streams
 * tumbling-window aggregation (docs/tutorials/streams.md).
 *
 * <p>Reads {@code orders} (key: order id, value: examples/orders JSON {@code {"order_id", "user_id",
 * "status", "quantity", "amount_cents"}}), re-keys each order by its status (a repartition topic),
 * counts per 10-minute tumbling window of the record's timestamp (event time, set by the producer;
 * grace 1 day so no order is dropped as late), and writes every change of a window's count to the
 * output topic: key {@code "<status>@<window start ms>"}, value {@code {"status", "window_start",
 * "window_end", "count"}} (epoch ms). The record cache is off, so each input order yields one output
 * update: under exactly_once_v2 a window's updates read with read_committed are exactly 1, 2, ..., n.
 * Bytes that are not an order are counted under status {@code "invalid"} rather than stopping the app.
 *
 * <p>Arguments: {@code --bootstrap-server B --application-id ID --state-dir D --output TOPIC}
 * [{@code --input orders}] [{@code --guarantee exactly_once_v2|at_least_once}]
 * [{@code --replication-factor 3}] [{@code --window-minutes 10}].
 */
public final class OrderCounts {
  private static final ObjectMapper JSON = new ObjectMapper();

  private OrderCounts() {}

  static Map<String, String> parseArgs(String[] args) {
    Map<String, String> opts = new HashMap<>();
    opts.put("input", "orders");
    opts.put("guarantee", StreamsConfig.EXACTLY_ONCE_V2);
    opts.put("replication-factor", "3");
    opts.put("window-minutes", "10");
    for (int i = 0; i < args.length; i += 2) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --name value pairs, got " + args[i]);
      }
      opts.put(args[i].substring(2), args[i + 1]);
    }
    for (String required : new String[] {"bootstrap-server", "application-id", "state-dir", "output"}) {
      if (!opts.containsKey(required)) {
        throw new IllegalArgumentException("--" + required + " is required");
      }
    }
    return opts;
  }

  static String statusOf(String value) {
    try {
      JsonNode order = JSON.readTree(value);
      JsonNode status = order == null ? null : order.get("status");
      return status != null && status.isTextual() ? status.asText() : "invalid";
    } catch (IOException e) {
      return "invalid";
    }
  }

  static Topology topology(String input, String output, Duration window) {
    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .groupBy((orderId, value) -> statusOf(value),
            Grouped.with("orders-by-status", Serdes.String(), Serdes.String()))
        .windowedBy(TimeWindows.ofSizeAndGrace(window, Duration.ofDays(1)))
        .count(Materialized.as("order-counts"))
        .toStream()
        .map((windowed, count) -> {
          ObjectNode value = JSON.createObjectNode();
          value.put("status", windowed.key());
          value.put("window_start", windowed.window().start());
          value.put("window_end", windowed.window().end());
          value.put("count", count);
          return KeyValue.pair(windowed.key() + "@" + windowed.window().start(), value.toString());
        })
        .to(output, Produced.with(Serdes.String(), Serdes.String()));
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
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // A member killed with -9 leaves the group after this long, not the default 45 s.
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 10000);
    Topology topology = topology(opts.get("input"), opts.get("output"),
        Duration.ofMinutes(Long.parseLong(opts.get("window-minutes"))));
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
