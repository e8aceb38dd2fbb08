import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The Kafka Streams word count, run by compat/streams/run_streams.py against a broker.
 *
 * <pre>
 * WordCount version
 * WordCount BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR
 * </pre>
 *
 * Lines of text from INPUT are split into lowercase words (runs of ASCII letters, digits and
 * '_'); grouping by word sends them through the repartition topic APP_ID-words-repartition,
 * and the running count per word lives in the store "counts", backed by the compacted
 * changelog APP_ID-counts-changelog. Every new count goes to OUTPUT (key: the word, value: the
 * count as an 8-byte big-endian long). Streams creates both internal topics itself.
 *
 * The program prints "STATE NEW_STATE" lines as the application changes state, and runs until
 * its standard input reaches end of file or a line "stop"; it then closes the application,
 * which commits what it processed, and prints "CLOSED". The exit code is 0 after a clean close,
 * 1 if the application failed or did not close in time.
 */
public final class WordCount {
    static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(30);
    static final String GLOBAL_HANDLER = "processing.exception.handler.global.enabled";

    public static void main(String[] args) throws IOException {
        if (args.length == 1 && args[0].equals("version")) {
            System.out.println(streamsVersion());
            System.exit(0);
        }
        if (args.length != 5) {
            System.out.println("FAIL: usage: WordCount version | WordCount BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR");
            System.exit(1);
        }
        String bootstrap = args[0], appId = args[1], input = args[2], output = args[3], stateDir = args[4];

        Properties config = config(bootstrap, appId, stateDir);
        KafkaStreams streams = new KafkaStreams(topology(input, output, config), config);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        streams.setStateListener((now, before) -> say("STATE " + now));
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            say("FAIL: stream thread died: " + describe(e));
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null && !line.trim().equals("stop"); line = in.readLine()) {
            // Anything else on stdin is ignored.
        }
        boolean closed = streams.close(CLOSE_TIMEOUT);
        say(closed ? "CLOSED" : "FAIL: not closed within " + CLOSE_TIMEOUT.getSeconds() + " s");
        System.exit(closed && failure.get() == null ? 0 : 1);
    }

    static Topology topology(String input, String output, Properties config) {
        // The builder gets the application's config too (else it checks a default one, and warns).
        StreamsBuilder builder = new StreamsBuilder(new TopologyConfig(new StreamsConfig(config)));
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
                .filter((key, word) -> !word.isEmpty())
                // The word becomes the key, so the records go through a repartition topic.
                .map((key, word) -> KeyValue.pair(word, word))
                .groupByKey(Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    static Properties config(String bootstrap, String appId, String stateDir) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.CLIENT_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, "at_least_once");
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        // Commit (and so flush counts to the output) often, with no record cache in between,
        // so the test sees every count within a fraction of a second.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        p.put("statestore.cache.max.bytes", 0L);
        // Delete consumed repartition records (DeleteRecords) soon after each commit.
        p.put("repartition.purge.interval.ms", 1000L);
        // Streams members do not leave the group on close, so the next process's join waits
        // for the previous member's session to expire: keep it at the broker's minimum.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        // Newer Streams warn at start-up until this is chosen (the default changes in 5.0); the
        // topology has no global state, so it changes nothing here. Older ones do not know it.
        // The partition assignor reads it from the main consumer's configs.
        if (StreamsConfig.configDef().names().contains(GLOBAL_HANDLER)) {
            p.put(GLOBAL_HANDLER, true);
            p.put(StreamsConfig.mainConsumerPrefix(GLOBAL_HANDLER), true);
        }
        return p;
    }

    /** The Streams library's version, from the properties file the client jar carries. */
    static String streamsVersion() {
        try (InputStream in = KafkaStreams.class.getClassLoader().getResourceAsStream("kafka/kafka-version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /** An exception and what caused it, on one line. */
    static String describe(Throwable e) {
        StringBuilder out = new StringBuilder();
        for (int depth = 0; e != null && depth < 4; e = e.getCause(), depth++) {
            if (out.length() > 0) {
                out.append(" <- caused by ");
            }
            out.append(e.getClass().getSimpleName()).append(": ").append(e.getMessage());
        }
        return out.toString().replace('\n', ' ');
    }
}
