#!/usr/bin/env bash
# Resolve an Apache Kafka broker (KRaft mode) from Maven Central for the messaging-kafka
# provider's tests, once per machine: Maven copies org.apache.kafka:kafka_2.13 and its
# runtime dependencies (plus a log4j2 binding) into $TOOL_CACHE/kafka/<version>/libs/
# (scripts/tool-cache.sh), linked as .tools/kafka. tests/kafka.py starts the broker with
# `java -cp 'libs/*' kafka.Kafka server.properties` after formatting its storage with
# `java -cp 'libs/*' kafka.tools.StorageTool` (the two classes the distribution's
# kafka-server-start.sh and kafka-storage.sh run). Needs java (17+) and mvn on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
# shellcheck source=scripts/tool-cache.sh
source "$ROOT/scripts/tool-cache.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.0.0}"
dest="$TOOL_CACHE/kafka/$KAFKA_VERSION"

resolve() {
  [[ -f "$dest/VERSION" ]] && return 0 # resolved by another clone while we waited
  local work="$dest.building"
  rm -rf "$work"
  mkdir -p "$work/libs"
  # A throwaway project whose only purpose is its dependency list; Maven's local repository
  # stays inside the cache entry's build folder so nothing lands in ~/.m2.
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.pulumi-wasmcloud</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  echo "[kafka] resolving kafka_2.13 $KAFKA_VERSION from Maven Central (once per machine)" >&2
  mvn -q -B -f "$work/pom.xml" -Dmaven.repo.local="$work/m2" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$work/libs" >&2
  rm -rf "$work/m2"
  java -cp "$work/libs/*" kafka.tools.StorageTool random-uuid >/dev/null
  echo "$KAFKA_VERSION" >"$work/VERSION"
  rm -rf "$dest"
  mv "$work" "$dest"
}

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  echo "[kafka] java or mvn is not installed; the messaging-kafka tests will be skipped" >&2
  exit 1
fi
if [[ -f "$dest/VERSION" ]]; then
  echo "[kafka] cached ($dest)" >&2
else
  with_lock kafka resolve
fi
link_tool "$dest" "$TOOLS/kafka"
