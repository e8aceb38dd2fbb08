#!/usr/bin/env bash
# The suite runs "$KAFKA_PATH/bin/kafka-topics.sh ..."; runner.py points
# KAFKA_PATH at this directory and KLAMM_KAFKA_TOPICS at the admin tool it
# builds from ../../kafka-topics.c.
exec "${KLAMM_KAFKA_TOPICS:?KLAMM_KAFKA_TOPICS is not set (use run.sh)}" "$@"
