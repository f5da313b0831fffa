"""Apache Kafka for tests: a single KRaft node (broker and controller in one JVM) in a
temporary directory, listening on loopback ports only.

scripts/install-kafka.sh resolves the broker's classpath from Maven Central into the tool
cache (linked as .tools/kafka); without it, or without java, the tests that need a broker
skip with that reason. The node is what the distribution's kafka-storage.sh format and
kafka-server-start.sh run (kafka.tools.StorageTool, kafka.Kafka), with a small heap.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.lattice import ROOT, free_port

KAFKA_HOME = Path(os.environ.get("KAFKA_HOME", ROOT / ".tools" / "kafka"))
START_TIMEOUT = 90.0  # a cold JVM on two busy cores
STARTED = "Kafka Server started"  # kafka.server.KafkaRaftServer's last line when up
JVM_OPTIONS = (
    "-Xmx256m",
    "-Xms32m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",  # starts faster; a test broker moves little data
    "-Djava.awt.headless=true",
)


def require_kafka() -> tuple[str, Path]:
    java = shutil.which("java")
    if java is None:
        pytest.skip("java is not installed (Kafka needs Java 17+)")
    if not (KAFKA_HOME / "VERSION").is_file():
        pytest.skip(f"Kafka is not installed at {KAFKA_HOME} (scripts/install-kafka.sh)")
    return java, KAFKA_HOME / "libs"


def cluster_id() -> str:
    """Kafka's cluster id form: 16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker:
    """One node; `start()` again after `stop()` brings the same topics back on the same port."""

    def __init__(self) -> None:
        self.java, self.libs = require_kafka()
        self.workdir = Path(tempfile.mkdtemp(prefix="pulumi-wasmcloud-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        self.log = self.workdir / "server.log"
        self.config = self.workdir / "server.properties"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()
        try:
            self._java(
                "kafka.tools.StorageTool",
                "format",
                # One argument: an id may start with '-', which would read as an option.
                f"--cluster-id={cluster_id()}",
                f"--config={self.config}",
            )
        except BaseException:
            self.remove()
            raise

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "1",
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.workdir / "log4j2.properties").write_text(
            "rootLogger.level=INFO\n"
            "rootLogger.appenderRef.file.ref=file\n"
            "appender.file.type=File\n"
            "appender.file.name=file\n"
            f"appender.file.fileName={self.log}\n"
            "appender.file.layout.type=PatternLayout\n"
            "appender.file.layout.pattern=[%d] %p %m (%c)%n\n"
        )

    def _command(self, main: str, *args: str) -> list[str]:
        return [
            self.java,
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _java(self, main: str, *args: str) -> None:
        subprocess.run(self._command(main, *args), check=True, capture_output=True, timeout=120)

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> KafkaBroker:
        already = self._log_text().count(STARTED)
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - the JVM writes it
        self.proc = subprocess.Popen(
            self._command("kafka.Kafka", str(self.config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        # Ready: the server logs that it started (after its listeners are bound).
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kafka exited: {self._log_text()[-3000:]}")
            if self._log_text().count(STARTED) > already:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"kafka did not start within {START_TIMEOUT:g} s: {self._log_text()[-3000:]}"
        )

    def stop(self) -> None:
        """Down at once (SIGKILL), as when a broker's machine goes away; the data stays."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
