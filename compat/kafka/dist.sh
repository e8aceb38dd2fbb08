#!/usr/bin/env bash
# Lays out Apache Kafka distributions from Maven Central artifacts, since no Kafka download can
# be fetched here: target/kafka/<version>/{libs,bin,config}, with the bin/ scripts Kafka users
# type (kafka-topics.sh, kafka-console-producer.sh, kafka-server-start.sh, ...). Point KAFKA_HOME
# at one and every tool that expects a real distribution runs.
#
#   compat/kafka/dist.sh              # every pinned version; prints nothing else when up to date
#   compat/kafka/dist.sh 4.4.0        # one of them
#
# Prints the KAFKA_HOME of the newest version last. Downloads are cached in target/kafka/m2.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# The newest 4.x that Maven Central serves, and the 3.9 line for older clients.
KAFKA_VERSIONS=(4.4.0 3.9.2)
out_base="$root/target/kafka"
repo="$out_base/m2"

# script name, then the main classes that implement it, newest location first (tools moved from
# the Scala core into kafka-tools between 3.x and 4.x).
TOOLS="
kafka-topics org.apache.kafka.tools.TopicCommand
kafka-console-producer org.apache.kafka.tools.ConsoleProducer kafka.tools.ConsoleProducer
kafka-console-consumer org.apache.kafka.tools.consumer.ConsoleConsumer kafka.tools.ConsoleConsumer
kafka-consumer-groups org.apache.kafka.tools.consumer.group.ConsumerGroupCommand kafka.admin.ConsumerGroupCommand
kafka-configs org.apache.kafka.tools.ConfigCommand kafka.admin.ConfigCommand
kafka-get-offsets org.apache.kafka.tools.GetOffsetShell kafka.tools.GetOffsetShell
kafka-delete-records org.apache.kafka.tools.DeleteRecordsCommand kafka.admin.DeleteRecordsCommand
kafka-log-dirs org.apache.kafka.tools.LogDirsCommand kafka.admin.LogDirsCommand
kafka-broker-api-versions org.apache.kafka.tools.BrokerApiVersionsCommand kafka.admin.BrokerApiVersionsCommand
kafka-producer-perf-test org.apache.kafka.tools.ProducerPerformance
kafka-consumer-perf-test org.apache.kafka.tools.ConsumerPerformance kafka.tools.ConsumerPerformance
kafka-e2e-latency org.apache.kafka.tools.EndToEndLatency kafka.tools.EndToEndLatency
kafka-verifiable-producer org.apache.kafka.tools.VerifiableProducer
kafka-verifiable-consumer org.apache.kafka.tools.VerifiableConsumer
kafka-transactions org.apache.kafka.tools.TransactionsCommand
kafka-acls org.apache.kafka.tools.AclCommand kafka.admin.AclCommand
kafka-dump-log org.apache.kafka.tools.DumpLogSegments kafka.tools.DumpLogSegments
kafka-features org.apache.kafka.tools.FeatureCommand
kafka-leader-election org.apache.kafka.tools.LeaderElectionCommand
kafka-metadata-quorum org.apache.kafka.tools.MetadataQuorumCommand
kafka-client-metrics org.apache.kafka.tools.ClientMetricsCommand
kafka-groups org.apache.kafka.tools.GroupsCommand
kafka-streams-application-reset org.apache.kafka.tools.StreamsResetter
kafka-storage kafka.tools.StorageTool
"

command -v mvn >/dev/null || { echo "dist.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
command -v java >/dev/null || { echo "dist.sh: java not found (apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }

stamp_of() { cat "$here/pom.xml" "$here/dist.sh" | sha256sum | cut -d' ' -f1; }

build() {
    local version=$1 home="$out_base/$1" stamp
    stamp=$(stamp_of)
    if [ "$(cat "$home/.complete" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    echo "dist.sh: laying out Kafka $version in $home" >&2
    rm -rf "$home"
    mkdir -p "$home/bin" "$home/config" "$home/logs"
    mvn -q -B -Dstyle.color=never -f "$here/pom.xml" -Dkafka.version="$version" -Dmaven.repo.local="$repo" \
        dependency:copy-dependencies -DoutputDirectory="$home/libs" >&2

    # Which classes the jars hold, to pick each tool's main class.
    local classes="$home/.classes"
    for jar in "$home"/libs/*.jar; do unzip -Z1 "$jar" 2>/dev/null | grep '\.class$' || true; done \
        | sed 's/\.class$//; s#/#.#g' | sort -u >"$classes"

    write_run_class "$home"
    local name cls found
    while read -r name rest; do
        [ -n "$name" ] || continue
        found=""
        for cls in $rest; do
            if grep -qxF "$cls" "$classes"; then found=$cls; break; fi
        done
        if [ -z "$found" ]; then
            echo "dist.sh: Kafka $version has no $name (none of: $rest)" >&2
            continue
        fi
        printf '#!/usr/bin/env bash\nexec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" %s "$@"\n' "$found" >"$home/bin/$name.sh"
    done <<<"$TOOLS"
    write_server_start "$home"
    write_configs "$home"
    chmod +x "$home"/bin/*.sh
    rm -f "$classes"
    train_cds "$home"
    echo "$stamp" >"$home/.complete"
}

# Class-data-sharing archives for the tools the tests run most: one run of each, against a port
# where nothing listens, records the classes it loaded (-XX:ArchiveClassesAtExit), and
# kafka-run-class.sh maps them into later runs of that main class, which then start in about
# half the time and CPU. A tool without an archive, or a JVM that refuses one, runs as usual.
train_cds() {
    local home=$1 nobody=127.0.0.1:9 cfg="$1/cds/quick.properties"
    mkdir -p "$home/cds"
    printf 'default.api.timeout.ms=1500\nrequest.timeout.ms=1000\n' >"$cfg"
    train "$home" kafka-topics --bootstrap-server "$nobody" --command-config "$cfg" --list
    train "$home" kafka-console-consumer --bootstrap-server "$nobody" --topic cds --partition 0 --offset 0 --timeout-ms 1500
    train "$home" kafka-console-producer --bootstrap-server "$nobody" --topic cds --producer-property max.block.ms=1500
    train "$home" kafka-get-offsets --bootstrap-server "$nobody" --command-config "$cfg" --topic cds
    train "$home" kafka-consumer-groups --bootstrap-server "$nobody" --command-config "$cfg" --list
    train "$home" kafka-configs --bootstrap-server "$nobody" --command-config "$cfg" --describe --entity-type topics --entity-name cds
    train "$home" kafka-broker-api-versions --bootstrap-server "$nobody" --command-config "$cfg"
}

train() {
    local home=$1 name=$2 cls
    shift 2
    rm -f "$home/cds/"*.new
    cls=$(sed -n 's/.*kafka-run-class.sh" \([^ ]*\) .*/\1/p' "$home/bin/$name.sh" 2>/dev/null)
    [ -n "$cls" ] || return 0
    echo x | KAFKA_OPTS="-XX:ArchiveClassesAtExit=$home/cds/$cls.jsa.new -Xlog:disable" \
        timeout 60 "$home/bin/$name.sh" "$@" >/dev/null 2>&1 || true
    if [ -s "$home/cds/$cls.jsa.new" ]; then
        mv "$home/cds/$cls.jsa.new" "$home/cds/$cls.jsa"
    else
        echo "dist.sh: no class-data archive for $name (it runs without one)" >&2
    fi
}

write_run_class() {
    cat >"$1/bin/kafka-run-class.sh" <<'SH'
#!/usr/bin/env bash
# Runs a main class from this distribution's libs/ with the JVM settings of Kafka's own script;
# the same environment variables override them (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS,
# KAFKA_LOG4J_OPTS, KAFKA_OPTS, JAVA_HOME, CLASSPATH).
if [ $# -lt 1 ]; then
    echo "USAGE: $0 classname [opts]" >&2
    exit 1
fi
base=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
java=java
[ -n "${JAVA_HOME:-}" ] && java="$JAVA_HOME/bin/java"
: "${KAFKA_HEAP_OPTS:=-Xmx256M}"
: "${KAFKA_JVM_PERFORMANCE_OPTS:=-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
: "${KAFKA_LOG4J_OPTS:=-Dlog4j2.configurationFile=$base/config/tools-log4j2.properties}"
: "${LOG_DIR:=$base/logs}"
# A tool's class-data archive (made by compat/kafka/dist.sh) halves its start-up; the JVM's own
# warnings go to stderr, so a JVM that cannot map the archive runs without it and prints
# nothing on stdout. The broker runs as Kafka's script runs it, and an archive named in
# KAFKA_OPTS is used instead.
cds=()
if [ "$1" != kafka.Kafka ] && [ -f "$base/cds/$1.jsa" ] && [[ "${KAFKA_OPTS:-}" != *Archive* ]]; then
    cds=("-XX:SharedArchiveFile=$base/cds/$1.jsa" -Xshare:auto -Xlog:disable -Xlog:all=warning:stderr)
fi
# shellcheck disable=SC2086 # the options are word lists, as in Kafka's script
exec "$java" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_LOG4J_OPTS -Dkafka.logs.dir="$LOG_DIR" \
    "${cds[@]}" ${KAFKA_OPTS:-} -cp "$base/libs/*${CLASSPATH:+:$CLASSPATH}" "$@"
SH
}

write_server_start() {
    cat >"$1/bin/kafka-server-start.sh" <<'SH'
#!/usr/bin/env bash
# Starts the Kafka broker (kafka.Kafka) with a server.properties, with Kafka's default heap.
if [ $# -lt 1 ]; then
    echo "USAGE: $0 server.properties [--override property=value]*" >&2
    exit 1
fi
base=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}"
export KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base/config/log4j2.properties}"
exec "$base/bin/kafka-run-class.sh" kafka.Kafka "$@"
SH
}

write_configs() {
    # Tools: warnings and errors on stderr, so stdout carries only what the tool prints.
    cat >"$1/config/tools-log4j2.properties" <<'CFG'
status = error
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = STDERR
CFG
    # The broker: INFO on stdout, as Kafka's console appender.
    cat >"$1/config/log4j2.properties" <<'CFG'
status = error
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
CFG
    # A single node in KRaft mode, combined broker and controller. Ports and the log dir are
    # overridden when the test harness starts it.
    cat >"$1/config/server.properties" <<'CFG'
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
CFG
}

if [ $# -gt 0 ]; then versions=("$@"); else versions=("${KAFKA_VERSIONS[@]}"); fi
for v in "${versions[@]}"; do
    build "$v"
done
echo "$out_base/${versions[0]}"
