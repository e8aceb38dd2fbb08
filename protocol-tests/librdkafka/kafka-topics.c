/*
 * Minimal stand-in for Apache Kafka's bin/kafka-topics.sh, enough for the
 * librdkafka test suite: --create / --alter --partitions / --delete through
 * the Admin API. Built by runner.py against the librdkafka it builds.
 *
 * usage: kafka-topics --bootstrap-server HOST:PORT
 *          (--create | --alter | --delete) --topic NAME
 *          [--partitions N] [--replication-factor N] [--config K=V]...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdkafka.h"

#define MAX_CONFIGS 32

static void die(const char *msg, const char *detail) {
        fprintf(stderr, "kafka-topics: %s%s%s\n", msg, detail ? ": " : "",
                detail ? detail : "");
        exit(1);
}

/* Waits for the admin result event and returns it; exits on timeout. */
static rd_kafka_event_t *await_result(rd_kafka_queue_t *q) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60 * 1000);
        if (!ev)
                die("timed out waiting for the broker", NULL);
        if (rd_kafka_event_error(ev))
                die("request failed", rd_kafka_event_error_string(ev));
        return ev;
}

static void check_topic_results(const rd_kafka_topic_result_t **res,
                                size_t cnt,
                                const char *done) {
        size_t i;
        for (i = 0; i < cnt; i++) {
                if (rd_kafka_topic_result_error(res[i]))
                        die(rd_kafka_topic_result_name(res[i]),
                            rd_kafka_topic_result_error_string(res[i]));
                printf("%s topic %s.\n", done,
                       rd_kafka_topic_result_name(res[i]));
        }
}

int main(int argc, char **argv) {
        const char *bootstrap = NULL, *topic = NULL, *op = NULL;
        const char *configs[MAX_CONFIGS];
        int config_cnt = 0, partitions = -1, replication = -1, i;
        char errstr[512];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_queue_t *q;
        rd_kafka_AdminOptions_t *opts;
        rd_kafka_event_t *ev;
        const rd_kafka_topic_result_t **res;
        size_t cnt;

        for (i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(a, "--create") || !strcmp(a, "--alter") ||
                    !strcmp(a, "--delete")) {
                        op = a + 2;
                        continue;
                }
                if (!v)
                        die("missing value for", a);
                i++;
                if (!strcmp(a, "--bootstrap-server"))
                        bootstrap = v;
                else if (!strcmp(a, "--topic"))
                        topic = v;
                else if (!strcmp(a, "--partitions"))
                        partitions = atoi(v);
                else if (!strcmp(a, "--replication-factor"))
                        replication = atoi(v);
                else if (!strcmp(a, "--config")) {
                        if (config_cnt == MAX_CONFIGS)
                                die("too many --config", NULL);
                        configs[config_cnt++] = v;
                } else
                        die("unsupported option", a);
        }
        if (!bootstrap || !topic || !op)
                die("need --bootstrap-server, --topic and one of "
                    "--create/--alter/--delete",
                    NULL);

        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "broker.address.family", "v4", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK)
                die("config", errstr);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                die("cannot create client", errstr);
        q    = rd_kafka_queue_new(rk);
        opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
        if (rd_kafka_AdminOptions_set_operation_timeout(
                opts, 30 * 1000, errstr, sizeof(errstr)))
                die("options", errstr);

        if (!strcmp(op, "create")) {
                rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                    topic, partitions, replication, errstr, sizeof(errstr));
                if (!nt)
                        die("bad topic", errstr);
                for (i = 0; i < config_cnt; i++) {
                        char *kv = strdup(configs[i]);
                        char *eq = strchr(kv, '=');
                        if (!eq)
                                die("--config needs KEY=VALUE", configs[i]);
                        *eq = '\0';
                        if (rd_kafka_NewTopic_set_config(nt, kv, eq + 1))
                                die("bad config", configs[i]);
                        free(kv);
                }
                rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
                ev = await_result(q);
                /* cnt is an out-parameter: fetch it before passing it on. */
                res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
                check_topic_results(res, cnt, "Created");
                rd_kafka_NewTopic_destroy(nt);
        } else if (!strcmp(op, "alter")) {
                rd_kafka_NewPartitions_t *np;
                if (partitions < 1 || config_cnt)
                        die("--alter supports only --partitions", NULL);
                np = rd_kafka_NewPartitions_new(topic, partitions, errstr,
                                                sizeof(errstr));
                if (!np)
                        die("bad partitions", errstr);
                rd_kafka_CreatePartitions(rk, &np, 1, opts, q);
                ev = await_result(q);
                /* cnt is an out-parameter: fetch it before passing it on. */
                res = rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &cnt);
                check_topic_results(res, cnt, "Altered");
                rd_kafka_NewPartitions_destroy(np);
        } else {
                rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
                rd_kafka_DeleteTopics(rk, &dt, 1, opts, q);
                ev = await_result(q);
                /* cnt is an out-parameter: fetch it before passing it on. */
                res = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
                check_topic_results(res, cnt, "Deleted");
                rd_kafka_DeleteTopic_destroy(dt);
        }

        rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return 0;
}
