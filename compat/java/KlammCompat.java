import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;


/**
 * The client matrix's scenarios (compat/harness/scenarios.py) checked with
 * Kafka's Java client, one scenario phase per run.
 *
 * <pre>
 * KlammCompat version
 * KlammCompat SCENARIO PHASE BOOTSTRAP TOPIC GROUP AUTO_PARTITIONS
 * </pre>
 *
 * PHASE is "run", or "before"/"after" for scenarios with a broker restart in
 * between. The last line printed is "PASS" (exit 0), "FAIL: reason" (exit 1)
 * or "SKIP: reason" (exit 2, a scenario this program has no check for).
 */
public final class KlammCompat {
    /** The longest any single step may take. */
    static final long WAIT_MS = 30_000;
    static final List<String> CODECS = Arrays.asList("none", "gzip", "snappy", "lz4", "zstd");

    static final class Failed extends RuntimeException {
        Failed(String message) {
            super(message);
        }
    }

    static final class Skipped extends RuntimeException {
        Skipped(String message) {
            super(message);
        }
    }

    /** A test record. A null partition or timestamp is left to the client. */
    static final class Rec {
        final String key;
        final String value;
        final List<String[]> headers;
        final Integer partition;
        final Long timestamp;
        /** Where the record landed, once acknowledged. */
        final long offset;

        Rec(String key, String value, List<String[]> headers, Integer partition, Long timestamp, long offset) {
            this.key = key;
            this.value = value;
            this.headers = headers;
            this.partition = partition;
            this.timestamp = timestamp;
            this.offset = offset;
        }

        Rec to(Integer partition, Long timestamp) {
            return new Rec(key, value, headers, partition, timestamp, -1);
        }

        Rec landed(int partition, long offset) {
            return new Rec(key, value, headers, partition, timestamp, offset);
        }
    }

    final String bootstrap;
    final String topic;
    final String group;
    final int autoPartitions;

    KlammCompat(String bootstrap, String topic, String group, int autoPartitions) {
        this.bootstrap = bootstrap;
        this.topic = topic;
        this.group = group;
        this.autoPartitions = autoPartitions;
    }

    /** The client library's version, from the properties file its jar carries (stable across 3.x and 4.x). */
    static String clientVersion() {
        try (InputStream in = KafkaProducer.class.getClassLoader().getResourceAsStream("kafka/kafka-version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    public static void main(String[] args) {
        if (args.length == 1 && args[0].equals("version")) {
            System.out.println(clientVersion());
            System.exit(0);
        }
        if (args.length != 6) {
            System.out.println("FAIL: usage: KlammCompat version | "
                    + "KlammCompat SCENARIO PHASE BOOTSTRAP TOPIC GROUP AUTO_PARTITIONS");
            System.exit(1);
        }
        int code;
        try {
            new KlammCompat(args[2], args[3], args[4], Integer.parseInt(args[5])).run(args[0], args[1]);
            System.out.println("PASS");
            code = 0;
        } catch (Skipped e) {
            System.out.println("SKIP: " + e.getMessage());
            code = 2;
        } catch (Failed e) {
            System.out.println("FAIL: " + e.getMessage());
            code = 1;
        } catch (Throwable e) {
            e.printStackTrace();
            System.out.println("FAIL: " + describe(e));
            code = 1;
        }
        System.out.flush();
        // Client threads left behind by a failure must not keep the JVM alive.
        System.exit(code);
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

    void run(String scenario, String phase) throws Exception {
        switch (scenario + "/" + phase) {
            case "metadata/run": metadata(); return;
            case "create/run": create(); return;
            case "offset/run": offset(); return;
            case "bulk/run": bulk(); return;
            case "quickstart/run": quickstart(); return;
            case "restart/before": case "crash/before": restartBefore(); return;
            case "restart/after": case "crash/after": restartAfter(); return;
            case "delete/run": delete(); return;
            case "add-partitions/run": addPartitions(); return;
            case "admin-configs/run": adminConfigs(); return;
            case "group/before": groupBefore(); return;
            case "group/after": groupAfter(); return;
            case "group-reset/run": groupReset(); return;
            case "assignors/run": assignors(); return;
            case "idempotent/run":
                verify(topic, produce(topic, mixed("idempotent", autoPartitions), "none", true, none()), true);
                return;
            default:
                break;
        }
        String codec = scenario.startsWith("produce-") ? scenario.substring("produce-".length()) : "";
        if (CODECS.contains(codec) && phase.equals("run")) {
            // The default producer: idempotent, acks=all since Kafka 3.0.
            verify(topic, produce(topic, mixed(codec, autoPartitions), codec, false, none()), true);
            return;
        }
        throw new Skipped("no Java check for scenario " + scenario + " (phase " + phase + ")");
    }

    static void check(boolean ok, String message) {
        if (!ok) {
            throw new Failed(message);
        }
    }

    static Map<Integer, Long> none() {
        return Collections.emptyMap();
    }

    // ---- test data -----------------------------------------------------------

    static List<String[]> headers(String... pairs) {
        List<String[]> out = new ArrayList<>();
        for (int i = 0; i + 1 < pairs.length; i += 2) {
            out.add(new String[] {pairs[i], pairs[i + 1]});
        }
        return out;
    }

    static Rec rec(String key, String value, String... headerPairs) {
        return new Rec(key, value, headers(headerPairs), null, null, -1);
    }

    /**
     * Keyed and unkeyed records with and without headers, edge cases included
     * (empty value, empty key, empty header value, non-ASCII, a ~20 KB value),
     * spread over the partitions, with timestamps of the last minute.
     */
    static List<Rec> mixed(String tag, int partitions) {
        StringBuilder big = new StringBuilder();
        for (int i = 0; i < 700; i++) {
            big.append(i == 0 ? "" : " ").append("lorem ipsum dolor sit amet ").append(i);
        }
        List<Rec> specs = new ArrayList<>(Arrays.asList(
                rec("key-0", "first " + tag, "trace-id", "t-0", "source", "compat"),
                rec(null, "unkeyed " + tag, "only", "header"),
                rec("key-2", ""),
                rec("", "empty key", "empty-value", ""),
                rec("key-4", big.toString()),
                rec("ключ-5", "unicode ✓ ü 日本 " + tag, "ünï", "✓"),
                rec(null, "unkeyed without headers"),
                rec("key-7", "{\"json\": true, \"n\": 7}", "content-type", "application/json")));
        for (int i = 8; i < 16; i++) {
            specs.add(rec("key-" + i, "value-" + i + " " + tag, "i", Integer.toString(i)));
        }
        long base = System.currentTimeMillis() - 60_000;
        List<Rec> out = new ArrayList<>();
        for (int i = 0; i < specs.size(); i++) {
            out.add(specs.get(i).to(i % partitions, base + i));
        }
        return out;
    }

    /** Where records with explicit partitions land in fresh partitions. */
    static List<Rec> expectedPlacement(List<Rec> recs) {
        Map<Integer, Long> next = new HashMap<>();
        List<Rec> out = new ArrayList<>();
        for (Rec r : recs) {
            long offset = next.merge(r.partition, 1L, Long::sum) - 1;
            out.add(r.landed(r.partition, offset));
        }
        return out;
    }

    // ---- clients ---------------------------------------------------------------

    Properties common() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "compat-java");
        return p;
    }

    Admin admin() {
        return Admin.create(common());
    }

    KafkaProducer<String, String> producer(String codec, boolean explicitIdempotence) {
        Properties p = common();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        p.put(ProducerConfig.LINGER_MS_CONFIG, "20");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(WAIT_MS));
        // delivery.timeout.ms must cover linger.ms + request.timeout.ms.
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(WAIT_MS));
        if (explicitIdempotence) {
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
            p.put(ProducerConfig.ACKS_CONFIG, "all");
        }
        return new KafkaProducer<>(p);
    }

    /** A consumer in the group, or with no group (for assign()) when null. */
    KafkaConsumer<String, String> consumer(String groupId) {
        return consumer(groupId, new Properties());
    }

    KafkaConsumer<String, String> consumer(String groupId, Properties extra) {
        Properties p = common();
        p.putAll(extra);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (groupId != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        }
        return new KafkaConsumer<>(p);
    }

    // ---- building blocks -------------------------------------------------------

    /**
     * Produce and return the records with where they landed. Offsets must
     * continue each partition's log from `start` (0 where absent).
     */
    List<Rec> produce(String t, List<Rec> recs, String codec, boolean explicitIdempotence,
                      Map<Integer, Long> start) throws Exception {
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        List<Rec> out = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(codec, explicitIdempotence)) {
            for (Rec r : recs) {
                ProducerRecord<String, String> record = new ProducerRecord<>(t, r.partition, r.timestamp, r.key, r.value);
                for (String[] h : r.headers) {
                    record.headers().add(h[0], h[1] == null ? null : h[1].getBytes(StandardCharsets.UTF_8));
                }
                sent.add(p.send(record));
            }
            p.flush();
            Map<Integer, Long> next = new HashMap<>(start);
            for (int i = 0; i < recs.size(); i++) {
                RecordMetadata md = sent.get(i).get(WAIT_MS, TimeUnit.MILLISECONDS);
                Rec r = recs.get(i);
                check(r.partition == null || r.partition == md.partition(),
                        "record " + i + " for partition " + r.partition + " was acknowledged on " + md.partition());
                long want = next.getOrDefault(md.partition(), 0L);
                check(md.offset() == want, t + "[" + md.partition() + "]: record " + i + " acknowledged at offset "
                        + md.offset() + ", expected " + want + " (the log end)");
                next.put(md.partition(), want + 1);
                out.add(r.landed(md.partition(), md.offset()));
            }
        }
        return out;
    }

    /** Up to `count` records of one partition from `from`, by assign(). */
    List<ConsumerRecord<String, String>> read(String t, int partition, long from, int count) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        if (count == 0) {
            return out;
        }
        try (KafkaConsumer<String, String> c = consumer(null)) {
            TopicPartition tp = new TopicPartition(t, partition);
            c.assign(Collections.singletonList(tp));
            c.seek(tp, from);
            long until = System.currentTimeMillis() + WAIT_MS;
            while (out.size() < count && System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    out.add(r);
                }
            }
        }
        return out.size() > count ? new ArrayList<>(out.subList(0, count)) : out;
    }

    Map<Integer, Long> endOffsets(String t) {
        try (KafkaConsumer<String, String> c = consumer(null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo info : c.partitionsFor(t)) {
                tps.add(new TopicPartition(t, info.partition()));
            }
            Map<Integer, Long> out = new TreeMap<>();
            for (Map.Entry<TopicPartition, Long> e : c.endOffsets(tps).entrySet()) {
                out.put(e.getKey().partition(), e.getValue());
            }
            return out;
        }
    }

    /**
     * Read back every partition the records landed on and compare in order.
     * Without exact timestamps (or for records the client stamped) only
     * plausibility is checked.
     */
    void verify(String t, List<Rec> placed, boolean exactTimestamps) {
        Map<Integer, List<Rec>> byPartition = new TreeMap<>();
        for (Rec r : placed) {
            byPartition.computeIfAbsent(r.partition, p -> new ArrayList<>()).add(r);
        }
        List<String> problems = new ArrayList<>();
        Map<Integer, Long> ends = endOffsets(t);
        for (Map.Entry<Integer, List<Rec>> e : byPartition.entrySet()) {
            List<Rec> want = e.getValue();
            Rec last = want.get(want.size() - 1);
            String label = t + "[" + e.getKey() + "]";
            Long end = ends.get(e.getKey());
            if (end == null || end != last.offset + 1) {
                problems.add(label + ": log end offset " + end + ", expected " + (last.offset + 1));
            }
            problems.addAll(compare(label, want, read(t, e.getKey(), want.get(0).offset, want.size()), exactTimestamps));
        }
        check(problems.isEmpty(), String.join("; ", problems));
    }

    static List<String> compare(String label, List<Rec> want, List<ConsumerRecord<String, String>> got,
                                boolean exactTimestamps) {
        List<String> problems = new ArrayList<>();
        if (got.size() != want.size()) {
            problems.add(label + ": expected " + want.size() + " records, read " + got.size());
        }
        long now = System.currentTimeMillis();
        for (int i = 0; i < Math.min(want.size(), got.size()) && problems.size() < 8; i++) {
            Rec w = want.get(i);
            ConsumerRecord<String, String> g = got.get(i);
            String at = label + " offset " + w.offset + ": ";
            if (g.partition() != w.partition || g.offset() != w.offset) {
                problems.add(at + "read the record at [" + g.partition() + "] offset " + g.offset());
            }
            if (!Objects.equals(g.key(), w.key)) {
                problems.add(at + "key " + g.key() + ", expected " + w.key);
            }
            if (!Objects.equals(g.value(), w.value)) {
                problems.add(at + "value " + shorten(g.value()) + ", expected " + shorten(w.value));
            }
            List<String> gotHeaders = new ArrayList<>();
            for (Header h : g.headers()) {
                gotHeaders.add(h.key() + "=" + (h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8)));
            }
            List<String> wantHeaders = new ArrayList<>();
            for (String[] h : w.headers) {
                wantHeaders.add(h[0] + "=" + h[1]);
            }
            if (!gotHeaders.equals(wantHeaders)) {
                problems.add(at + "headers " + gotHeaders + ", expected " + wantHeaders);
            }
            if (exactTimestamps && w.timestamp != null) {
                if (g.timestamp() != w.timestamp) {
                    problems.add(at + "timestamp " + g.timestamp() + ", expected " + w.timestamp);
                }
            } else if (Math.abs(g.timestamp() - now) > 3_600_000) {
                problems.add(at + "implausible timestamp " + g.timestamp());
            }
        }
        return problems;
    }

    static String shorten(String s) {
        return s == null || s.length() <= 40 ? String.valueOf(s) : s.substring(0, 37) + "...";
    }

    static TopicDescription describe(Admin admin, String t) throws Exception {
        return admin.describeTopics(Collections.singleton(t)).allTopicNames().get(WAIT_MS, TimeUnit.MILLISECONDS).get(t);
    }

    static Set<String> topicNames(Admin admin) throws Exception {
        return admin.listTopics().names().get(WAIT_MS, TimeUnit.MILLISECONDS);
    }

    static void createTopic(Admin admin, String t, int partitions) throws Exception {
        admin.createTopics(Collections.singleton(new NewTopic(t, partitions, (short) 1)))
                .all().get(WAIT_MS, TimeUnit.MILLISECONDS);
    }

    // ---- scenarios ---------------------------------------------------------------

    void metadata() throws Exception {
        try (Admin admin = admin()) {
            Collection<Node> nodes = admin.describeCluster().nodes().get(WAIT_MS, TimeUnit.MILLISECONDS);
            List<String> seen = new ArrayList<>();
            for (Node n : nodes) {
                seen.add(n.host() + ":" + n.port());
            }
            check(seen.equals(Collections.singletonList(bootstrap)),
                    "brokers in metadata: " + seen + ", expected exactly [" + bootstrap + "]");
            int count;
            // A producer asking for an unknown topic makes the broker auto-create it.
            try (KafkaProducer<String, String> p = producer("none", false)) {
                count = p.partitionsFor(topic).size();
            }
            check(count == autoPartitions, "auto-created " + topic + " has " + count + " partitions, expected "
                    + autoPartitions + " (num.partitions)");
            check(topicNames(admin).contains(topic), "auto-created " + topic + " missing from the topic list");
            int broker = nodes.iterator().next().id();
            TopicDescription d = describe(admin, topic);
            check(d.partitions().size() == autoPartitions, "describeTopics: " + d);
            for (TopicPartitionInfo info : d.partitions()) {
                check(info.leader() != null && info.leader().id() == broker,
                        topic + "[" + info.partition() + "] leader " + info.leader() + ", expected broker " + broker);
            }
        }
    }

    void create() throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, topic, 3);
            check(topicNames(admin).contains(topic), "created " + topic + " is not listed");
            int count = describe(admin, topic).partitions().size();
            check(count == 3, "created " + topic + " has " + count + " partitions, expected 3");
            try {
                createTopic(admin, topic, 3);
                throw new Failed("creating " + topic + " a second time succeeded; expected TOPIC_ALREADY_EXISTS");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof TopicExistsException,
                        "creating " + topic + " again failed with " + describe(e.getCause()) + ", expected TopicExistsException");
            }
        }
        verify(topic, produce(topic, mixed("create", 3).subList(0, 6), "none", false, none()), true);
    }

    void offset() throws Exception {
        List<Rec> recs = new ArrayList<>();
        for (Rec r : mixed("offset", autoPartitions).subList(0, 10)) {
            recs.add(r.to(0, r.timestamp));
        }
        List<Rec> placed = produce(topic, recs, "none", false, none());
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = consumer(null)) {
            Map<TopicPartition, Long> lo = c.beginningOffsets(Arrays.asList(p0, p1));
            Map<TopicPartition, Long> hi = c.endOffsets(Arrays.asList(p0, p1));
            check(lo.get(p0) == 0 && hi.get(p0) == 10,
                    "offsets of [0]: earliest " + lo.get(p0) + ", latest " + hi.get(p0) + "; expected 0 and 10");
            check(lo.get(p1) == 0 && hi.get(p1) == 0,
                    "offsets of empty [1]: earliest " + lo.get(p1) + ", latest " + hi.get(p1) + "; expected 0 and 0");
        }
        try (Admin admin = admin()) {
            long latest = admin.listOffsets(Collections.singletonMap(p0, OffsetSpec.latest()))
                    .partitionResult(p0).get(WAIT_MS, TimeUnit.MILLISECONDS).offset();
            check(latest == 10, "Admin.listOffsets latest of [0]: " + latest + ", expected 10");
        }
        List<String> problems = compare(topic + "[0] from offset 6", placed.subList(6, 10), read(topic, 0, 6, 4), true);
        check(problems.isEmpty(), String.join("; ", problems));
    }

    void bulk() throws Exception {
        long base = System.currentTimeMillis() - 60_000;
        String filler = "0123456789abcdef".repeat(16);
        List<Rec> recs = new ArrayList<>();
        for (int i = 0; i < 4000; i++) {
            recs.add(new Rec("k-" + i, "v-" + i + "-" + filler, headers("bulk", "yes"), 0, base + i, -1));
        }
        StringBuilder blob = new StringBuilder();
        for (int i = 0; blob.length() < 900_000; i++) {
            blob.append(Integer.toHexString(i * 7919)).append('.');
        }
        for (int i = 0; i < 10; i++) {
            String value = i == 5 ? blob.toString() : "small-" + i;
            recs.add(new Rec("p1-" + i, value, headers(), 1, base + i, -1));
        }
        verify(topic, produce(topic, recs, "none", false, none()), true);
    }

    void quickstart() throws Exception {
        String t = topic.replace("quickstart", "MyFirstKafkaTopic");
        List<Rec> recs = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            recs.add(rec(null, "{\"id\": " + i + ", \"message\": \"hello from java\"}"));
        }
        verify(t, produce(t, recs, "none", false, none()), false);
    }

    void restartBefore() throws Exception {
        verify(topic, produce(topic, mixed("restart", autoPartitions), "gzip", false, none()), true);
    }

    void restartAfter() throws Exception {
        // Same keys, values, headers and places as before the restart; the
        // timestamps were those of the earlier run.
        verify(topic, expectedPlacement(mixed("restart", autoPartitions)), false);
        List<Rec> more = mixed("after restart", autoPartitions).subList(0, 4);
        verify(topic, produce(topic, more, "none", false, endOffsets(topic)), true);
    }

    void delete() throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1);
            produce(topic, mixed("delete", 1).subList(0, 3), "none", false, none());
            admin.deleteTopics(Collections.singleton(topic)).all().get(WAIT_MS, TimeUnit.MILLISECONDS);
            long until = System.currentTimeMillis() + 10_000;
            while (topicNames(admin).contains(topic)) {
                check(System.currentTimeMillis() < until, topic + " still listed 10s after deleteTopics");
                Thread.sleep(500);
            }
        }
    }

    void addPartitions() throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, topic, 3);
            List<Rec> placed = new ArrayList<>(produce(topic, mixed("before growing", 3).subList(0, 6), "none", false, none()));
            admin.createPartitions(Collections.singletonMap(topic, NewPartitions.increaseTo(4)))
                    .all().get(WAIT_MS, TimeUnit.MILLISECONDS);
            int count = describe(admin, topic).partitions().size();
            check(count == 4, topic + " has " + count + " partitions after growing to 4");
            List<Rec> more = new ArrayList<>();
            for (Rec r : mixed("after growing", 1).subList(0, 4)) {
                more.add(r.to(3, r.timestamp));
            }
            placed.addAll(produce(topic, more, "none", false, none()));
            verify(topic, placed, true);
        }
    }

    static Map<String, String> overrides(Admin admin, ConfigResource res) throws Exception {
        Config config = admin.describeConfigs(Collections.singleton(res)).all().get(WAIT_MS, TimeUnit.MILLISECONDS).get(res);
        Map<String, String> out = new TreeMap<>();
        for (ConfigEntry e : config.entries()) {
            if (e.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG) {
                out.put(e.name(), e.value());
            }
        }
        return out;
    }

    static void alter(Admin admin, ConfigResource res, List<AlterConfigOp> ops) throws Exception {
        Map<ConfigResource, Collection<AlterConfigOp>> change = new HashMap<>();
        change.put(res, ops);
        admin.incrementalAlterConfigs(change).all().get(WAIT_MS, TimeUnit.MILLISECONDS);
    }

    void adminConfigs() throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1);
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Map<String, String> now = overrides(admin, res);
            check(now.isEmpty(), "new topic " + topic + " has overrides already: " + now);
            Map<String, String> want = new TreeMap<>();
            want.put("retention.ms", "1000");
            want.put("max.message.bytes", "2000000");
            List<AlterConfigOp> set = new ArrayList<>();
            for (Map.Entry<String, String> e : want.entrySet()) {
                set.add(new AlterConfigOp(new ConfigEntry(e.getKey(), e.getValue()), AlterConfigOp.OpType.SET));
            }
            alter(admin, res, set);
            now = overrides(admin, res);
            check(now.equals(want), "after setting " + want + " the overrides are " + now);
            alter(admin, res, Collections.singletonList(
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE)));
            now = overrides(admin, res);
            check(now.equals(Collections.singletonMap("max.message.bytes", "2000000")),
                    "after deleting retention.ms the overrides are " + now);
        }
    }

    /**
     * A group member polling in its own thread (consumers are single-threaded).
     * It commits when asked, while the group is still stable, and leaves when
     * told to stop: a commit racing the other member's leaving could meet a
     * rebalance.
     */
    final class Member implements Runnable {
        final List<ConsumerRecord<String, String>> got = Collections.synchronizedList(new ArrayList<>());
        volatile Set<Integer> owned = Collections.emptySet();
        volatile boolean commit;
        volatile boolean committed;
        volatile boolean stop;
        volatile Throwable error;
        final Thread thread = new Thread(this);

        @Override
        public void run() {
            try (KafkaConsumer<String, String> c = consumer(group)) {
                c.subscribe(Collections.singletonList(topic));
                while (!stop) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        got.add(r);
                    }
                    Set<Integer> now = new TreeSet<>();
                    for (TopicPartition tp : c.assignment()) {
                        now.add(tp.partition());
                    }
                    owned = now;
                    if (commit && !committed) {
                        c.commitSync(Duration.ofMillis(WAIT_MS));
                        committed = true;
                    }
                }
            } catch (Throwable e) {
                error = e;
            }
        }
    }

    // ---- assignors --------------------------------------------------------------

    static final int ASSIGN_PARTITIONS = 6;
    static final int ASSIGN_MEMBERS = 3;

    /** A member of an assignor check: commits after every poll, tracks what it owns and gives up. */
    final class AssignMember implements Runnable, ConsumerRebalanceListener {
        final String t;
        final String g;
        final String assignor;
        final List<ConsumerRecord<String, String>> got = Collections.synchronizedList(new ArrayList<>());
        final List<Integer> revoked = Collections.synchronizedList(new ArrayList<>());
        final Set<Integer> owned = Collections.synchronizedSet(new TreeSet<>());
        volatile boolean stop;
        volatile Throwable error;
        final Thread thread = new Thread(this);

        AssignMember(String t, String g, String assignor) {
            this.t = t;
            this.g = g;
            this.assignor = assignor;
            thread.start();
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            parts.forEach(tp -> owned.add(tp.partition()));
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            parts.forEach(tp -> {
                revoked.add(tp.partition());
                owned.remove(tp.partition());
            });
        }

        Set<Integer> owned() {
            synchronized (owned) {
                return new TreeSet<>(owned);
            }
        }

        @Override
        public void run() {
            Properties p = new Properties();
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "300");
            try (KafkaConsumer<String, String> c = consumer(g, p)) {
                c.subscribe(Collections.singletonList(t), this);
                while (!stop) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                        got.add(r);
                    }
                    try {
                        c.commitSync(Duration.ofMillis(WAIT_MS));
                    } catch (RebalanceInProgressException e) {
                        // A cooperative rebalance is under way: the next poll completes it, and the
                        // partitions this member keeps are committed after it.
                    }
                }
            } catch (Throwable e) {
                error = e;
            }
        }
    }

    void assignors() throws Exception {
        Map<String, String> strategies = new TreeMap<>();
        strategies.put("range", "org.apache.kafka.clients.consumer.RangeAssignor");
        strategies.put("roundrobin", "org.apache.kafka.clients.consumer.RoundRobinAssignor");
        strategies.put("sticky", "org.apache.kafka.clients.consumer.StickyAssignor");
        strategies.put("cooperative-sticky", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        for (Map.Entry<String, String> e : strategies.entrySet()) {
            checkAssignor(e.getKey(), e.getValue());
        }
    }

    void checkAssignor(String name, String assignor) throws Exception {
        String t = topic + "-" + name;
        try (Admin admin = admin()) {
            createTopic(admin, t, ASSIGN_PARTITIONS);
        }
        boolean sticky = name.contains("sticky");
        List<AssignMember> members = new ArrayList<>();
        try {
            for (int i = 0; i < ASSIGN_MEMBERS; i++) {
                members.add(new AssignMember(t, t + "-group", assignor));
            }
            List<Set<Integer>> before = assignPhase(name + ", 3 members", t, members, Arrays.asList(2, 2, 2), 0);
            if (name.equals("range") || name.equals("roundrobin")) {
                // Both place partitions by the members' sorted ids: the sets owned together are known.
                Set<Set<Integer>> want = new HashSet<>();
                int[][] shape = name.equals("range") ? new int[][] {{0, 1}, {2, 3}, {4, 5}} : new int[][] {{0, 3}, {1, 4}, {2, 5}};
                for (int[] s : shape) {
                    want.add(new TreeSet<>(Arrays.asList(s[0], s[1])));
                }
                check(new HashSet<>(before).equals(want), name + ": members own " + before + ", expected the sets " + want);
            }
            if (!sticky) {
                return;
            }
            List<Integer> revokedBefore = new ArrayList<>();
            for (AssignMember m : members) {
                revokedBefore.add(m.revoked.size());
            }
            members.add(new AssignMember(t, t + "-group", assignor));
            String label = name + ", after a 4th member joined";
            List<Set<Integer>> after = assignPhase(label, t, members, Arrays.asList(1, 1, 2, 2), 1);
            for (int i = 0; i < before.size(); i++) {
                check(before.get(i).containsAll(after.get(i)), label + ": member " + i + " owned " + before.get(i)
                        + " and then " + after.get(i) + ", not a subset of what it had");
                if (name.equals("cooperative-sticky")) {
                    List<Integer> gaveUp;
                    synchronized (members.get(i).revoked) {
                        gaveUp = new ArrayList<>(members.get(i).revoked.subList(revokedBefore.get(i), members.get(i).revoked.size()));
                    }
                    Set<Integer> moved = new TreeSet<>(before.get(i));
                    moved.removeAll(after.get(i));
                    check(new TreeSet<>(gaveUp).equals(moved) && gaveUp.size() == moved.size(), label + ": member " + i
                            + " gave up " + gaveUp + ", expected only the moving " + moved + " (not an incremental rebalance)");
                }
            }
        } finally {
            members.forEach(m -> m.stop = true);
            for (AssignMember m : members) {
                m.thread.join(WAIT_MS);
            }
        }
    }

    /**
     * Waits for a balanced split of the given shares that holds for a second, produces six
     * records per partition and checks each is read exactly once, by its partition's owner.
     */
    List<Set<Integer>> assignPhase(String label, String t, List<AssignMember> members, List<Integer> shares,
                                   int round) throws Exception {
        List<Integer> marks = new ArrayList<>();
        for (AssignMember m : members) {
            marks.add(m.got.size());
        }
        long until = System.currentTimeMillis() + 2 * WAIT_MS;
        List<Set<Integer>> split = new ArrayList<>();
        long stableSince = -1;
        List<Set<Integer>> last = null;
        while (true) {
            split.clear();
            for (AssignMember m : members) {
                check(m.error == null, label + ": member failed: " + describe(m.error));
                split.add(m.owned());
            }
            List<Integer> sizes = new ArrayList<>();
            Set<Integer> union = new TreeSet<>();
            int total = 0;
            for (Set<Integer> s : split) {
                sizes.add(s.size());
                union.addAll(s);
                total += s.size();
            }
            Collections.sort(sizes);
            boolean ok = sizes.equals(shares) && total == ASSIGN_PARTITIONS && union.size() == ASSIGN_PARTITIONS;
            long now = System.currentTimeMillis();
            if (!ok || !split.equals(last)) {
                stableSince = ok ? now : -1;
            } else if (now - stableSince > 1000) {
                break;
            }
            last = new ArrayList<>(split);
            check(now < until, label + ": assignment never settled to shares " + shares + ": " + split);
            Thread.sleep(50);
        }
        List<Rec> recs = new ArrayList<>();
        for (int i = 0; i < 6 * ASSIGN_PARTITIONS; i++) {
            recs.add(rec("k" + i, label + " " + i).to(i % ASSIGN_PARTITIONS, null));
        }
        Map<Integer, Long> start = new HashMap<>();
        for (int p = 0; p < ASSIGN_PARTITIONS; p++) {
            start.put(p, 6L * round);
        }
        produce(t, recs, "none", false, start);
        long until2 = System.currentTimeMillis() + WAIT_MS;
        int read = 0;
        while (System.currentTimeMillis() < until2) {
            read = 0;
            for (int i = 0; i < members.size(); i++) {
                read += members.get(i).got.size() - (i < marks.size() ? marks.get(i) : 0);
            }
            if (read >= recs.size()) {
                break;
            }
            Thread.sleep(50);
        }
        List<String> values = new ArrayList<>();
        for (int i = 0; i < members.size(); i++) {
            AssignMember m = members.get(i);
            check(m.owned().equals(split.get(i)), label + ": assignment changed while reading: " + split.get(i)
                    + " became " + m.owned());
            List<ConsumerRecord<String, String>> mine;
            synchronized (m.got) {
                mine = new ArrayList<>(m.got.subList(i < marks.size() ? marks.get(i) : 0, m.got.size()));
            }
            for (ConsumerRecord<String, String> r : mine) {
                check(split.get(i).contains(r.partition()), label + ": member " + i + " (owning " + split.get(i)
                        + ") read a record of partition " + r.partition());
                values.add(r.value());
            }
        }
        List<String> want = new ArrayList<>();
        recs.forEach(r -> want.add(r.value));
        Collections.sort(values);
        Collections.sort(want);
        check(values.equals(want), label + ": the group read " + values.size() + " records, expected each of "
                + want.size() + " exactly once");
        return new ArrayList<>(split);
    }

    void groupBefore() throws Exception {
        try (KafkaProducer<String, String> p = producer("none", false)) {
            int count = p.partitionsFor(topic).size();
            check(count == autoPartitions, topic + " has " + count + " partitions, expected " + autoPartitions);
        }
        List<Member> members = Arrays.asList(new Member(), new Member());
        members.forEach(m -> m.thread.start());
        List<Rec> recs = mixed("group", autoPartitions).subList(0, 8);
        List<Set<Integer>> split = new ArrayList<>();
        try {
            long until = System.currentTimeMillis() + 2 * WAIT_MS;
            long stableSince = -1;
            while (true) {
                split.clear();
                for (Member m : members) {
                    check(m.error == null, "member failed: " + describe(m.error));
                    split.add(m.owned);
                }
                Set<Integer> union = new TreeSet<>();
                int total = 0;
                for (Set<Integer> s : split) {
                    union.addAll(s);
                    total += s.size();
                }
                boolean ok = !split.get(0).isEmpty() && !split.get(1).isEmpty()
                        && total == autoPartitions && union.size() == autoPartitions;
                long now = System.currentTimeMillis();
                if (!ok) {
                    stableSince = -1;
                } else if (stableSince < 0) {
                    stableSince = now;
                } else if (now - stableSince > 1000) {
                    break;
                }
                check(now < until, "members never split the partitions: " + split);
                Thread.sleep(100);
            }
            produce(topic, recs, "none", false, none());
            long until2 = System.currentTimeMillis() + WAIT_MS;
            while (members.get(0).got.size() + members.get(1).got.size() < recs.size()
                    && System.currentTimeMillis() < until2) {
                Thread.sleep(100);
            }
            for (Member m : members) {
                m.commit = true;
            }
            long until3 = System.currentTimeMillis() + WAIT_MS;
            while (!(members.get(0).committed && members.get(1).committed) && System.currentTimeMillis() < until3) {
                for (Member m : members) {
                    check(m.error == null, "a member failed while committing: " + describe(m.error));
                }
                Thread.sleep(100);
            }
            check(members.get(0).committed && members.get(1).committed, "members did not commit within "
                    + WAIT_MS + " ms");
        } finally {
            for (Member m : members) {
                m.stop = true;
            }
            for (Member m : members) {
                m.thread.join(WAIT_MS);
            }
        }
        List<String> values = new ArrayList<>();
        for (int i = 0; i < members.size(); i++) {
            Member m = members.get(i);
            check(m.error == null, "member " + i + " failed: " + describe(m.error));
            for (ConsumerRecord<String, String> r : m.got) {
                check(split.get(i).contains(r.partition()),
                        "member " + i + " owns " + split.get(i) + " but got a record of partition " + r.partition());
                values.add(r.value());
            }
        }
        List<String> want = new ArrayList<>();
        for (Rec r : recs) {
            want.add(r.value);
        }
        Collections.sort(values);
        Collections.sort(want);
        check(values.equals(want), "the group consumed " + values.size() + " records, expected each of "
                + want.size() + " exactly once");
        Map<Integer, Long> ends = endOffsets(topic);
        try (Admin admin = admin()) {
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(WAIT_MS, TimeUnit.MILLISECONDS);
            for (Map.Entry<Integer, Long> e : ends.entrySet()) {
                OffsetAndMetadata om = committed.get(new TopicPartition(topic, e.getKey()));
                long have = om == null ? 0 : om.offset();
                check(have == e.getValue(), "committed offset of [" + e.getKey() + "]: " + om + ", expected "
                        + e.getValue());
            }
        }
    }

    void groupAfter() throws Exception {
        List<Rec> more = mixed("resumed", autoPartitions).subList(8, 12);
        produce(topic, more, "none", false, endOffsets(topic));
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(group)) {
            c.subscribe(Collections.singletonList(topic));
            long until = System.currentTimeMillis() + WAIT_MS;
            long quietUntil = -1;
            while (System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
                // Keep polling a little so redelivered old records would show up.
                if (values.size() >= more.size()) {
                    if (quietUntil < 0) {
                        quietUntil = System.currentTimeMillis() + 2000;
                    } else if (System.currentTimeMillis() > quietUntil) {
                        break;
                    }
                }
            }
            c.commitSync(Duration.ofMillis(WAIT_MS));
        }
        List<String> want = new ArrayList<>();
        for (Rec r : more) {
            want.add(r.value);
        }
        Collections.sort(values);
        Collections.sort(want);
        check(values.equals(want), "the resumed member read " + values + ", expected only " + want);
    }

    long committed(Admin admin, TopicPartition tp) throws Exception {
        OffsetAndMetadata om = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                .get(WAIT_MS, TimeUnit.MILLISECONDS).get(tp);
        return om == null ? -1 : om.offset();
    }

    static long listOffset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Collections.singletonMap(tp, spec)).partitionResult(tp)
                .get(WAIT_MS, TimeUnit.MILLISECONDS).offset();
    }

    static Set<String> groupIds(Admin admin) throws Exception {
        Set<String> out = new HashSet<>();
        for (ConsumerGroupListing g : admin.listConsumerGroups().all().get(WAIT_MS, TimeUnit.MILLISECONDS)) {
            out.add(g.groupId());
        }
        return out;
    }

    void reset(Admin admin, TopicPartition tp, long to, long want, String how) throws Exception {
        check(to == want, how + ": the target offset is " + to + ", expected " + want);
        admin.alterConsumerGroupOffsets(group, Collections.singletonMap(tp, new OffsetAndMetadata(to)))
                .all().get(WAIT_MS, TimeUnit.MILLISECONDS);
        long now = committed(admin, tp);
        check(now == want, "after resetting " + how + " the committed offset is " + now + ", expected " + want);
    }

    void groupReset() throws Exception {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = admin()) {
            createTopic(admin, topic, 1);
            // No timestamps of our own: everything sent after `cut` is stamped later.
            List<Rec> recs = new ArrayList<>();
            for (Rec r : mixed("reset", 1).subList(0, 10)) {
                recs.add(r.to(0, null));
            }
            produce(topic, recs.subList(0, 5), "none", false, none());
            long cut = System.currentTimeMillis();
            Thread.sleep(200);
            produce(topic, recs.subList(5, 10), "none", false, Collections.singletonMap(0, 5L));

            int read = 0;
            try (KafkaConsumer<String, String> c = consumer(group)) {
                c.subscribe(Collections.singletonList(topic));
                long until = System.currentTimeMillis() + WAIT_MS;
                while (read < 10 && System.currentTimeMillis() < until) {
                    read += c.poll(Duration.ofMillis(200)).count();
                }
                c.commitSync(Duration.ofMillis(WAIT_MS));
            }
            check(read == 10, "the group read " + read + " records, expected 10");
            long now = committed(admin, tp);
            check(now == 10, "after reading everything the committed offset is " + now + ", expected 10");
            check(groupIds(admin).contains(group), group + " missing from the group list");

            reset(admin, tp, listOffset(admin, tp, OffsetSpec.earliest()), 0, "to the earliest offset");
            reset(admin, tp, 3, 3, "to offset 3");
            reset(admin, tp, committed(admin, tp) - 1, 2, "by -1");
            reset(admin, tp, listOffset(admin, tp, OffsetSpec.forTimestamp(cut + 1)), 5, "to a time between the batches");
            reset(admin, tp, listOffset(admin, tp, OffsetSpec.latest()), 10, "to the latest offset");

            admin.deleteConsumerGroups(Collections.singleton(group)).all().get(WAIT_MS, TimeUnit.MILLISECONDS);
            long until = System.currentTimeMillis() + 10_000;
            while (groupIds(admin).contains(group)) {
                check(System.currentTimeMillis() < until, group + " still listed 10s after it was deleted");
                Thread.sleep(500);
            }
        }
    }
}
