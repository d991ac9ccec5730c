"""A local, real Apache Kafka broker (KRaft, single node) for development and tests.

The broker jars come from Maven Central through the machine's ``mvn`` (a small pom shipped
with the package), are cached under ``PRSM_KAFKA_CACHE`` (default ``~/.cache/prsm-events``)
and run with the machine's ``java``. Data and logs live under ``PRSM_HOME/kafka``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from prsm_events.errors import BrokerError
from prsm_events.kafka_admin import wait_for_broker

__all__ = ["LocalBroker"]

_LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
"""


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LocalBroker:
    """The broker of ``prsm dev up``: ``resolve()``, ``start()``, ``stop()``, ``status()``."""

    home: Path
    port: int = 19092
    heap: str = "512m"

    @property
    def dir(self) -> Path:
        return self.home.absolute() / "kafka"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "broker.log"

    def kafka_version(self) -> str:
        pom = resources.files("prsm_events").joinpath("data/kafka-pom.xml").read_text()
        match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
        assert match is not None
        return match.group(1)

    @property
    def cache(self) -> Path:
        """Where resolved jars are kept, shared by every PRSM_HOME (PRSM_KAFKA_CACHE)."""
        root = os.environ.get("PRSM_KAFKA_CACHE", "~/.cache/prsm-events")
        return Path(root).expanduser() / f"kafka-{self.kafka_version()}"

    def resolve(self) -> Path:
        """Download (once) the broker jars; return the directory that holds them."""
        version = self.kafka_version()
        libs = self.cache / "libs"
        marker = libs / ".complete"
        if marker.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (`mvn`) is needed to fetch Kafka; install it or set "
                              "PRSM_KAFKA_BOOTSTRAP to an existing cluster")
        self.cache.mkdir(parents=True, exist_ok=True)
        pom = self.cache / "pom.xml"
        pom.write_text(resources.files("prsm_events").joinpath("data/kafka-pom.xml").read_text())
        if libs.exists():
            shutil.rmtree(libs)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerError(f"mvn could not resolve Kafka {version}:\n{done.stdout}{done.stderr}")
        marker.touch()
        return libs

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("`java` (17+) is needed to run the local Kafka broker")
        return java

    def _write_config(self) -> Path:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        controller = self.port + 1
        props = f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=8388608
log.retention.check.interval.ms=60000
"""
        config = self.dir / "server.properties"
        config.write_text(props)
        (self.dir / "log4j.properties").write_text(_LOG4J)
        return config

    def _jvm(self, libs: Path) -> list[str]:
        return [self._java(), f"-Xmx{self.heap}", f"-Xms{self.heap}",
                f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                "-cp", f"{libs}/*"]

    def pid(self) -> int | None:
        """The running broker's pid, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def start(self, timeout_s: float = 90.0) -> str:
        """Start the broker (if not running) and wait until it answers; return bootstrap."""
        if self.pid() is not None:
            asyncio.run(wait_for_broker(self.bootstrap, timeout_s))
            return self.bootstrap
        for port in (self.port, self.port + 1):
            if _port_in_use(port):
                raise BrokerError(
                    f"port {port} is already in use by another process: stop it, choose another "
                    "PRSM_BROKER_PORT, or point PRSM_KAFKA_BOOTSTRAP at that broker")
        libs = self.resolve()
        config = self._write_config()
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = uuid.uuid4().hex[:22]
            fmt = subprocess.run(
                [*self._jvm(libs), "kafka.tools.StorageTool", "format", "-t", cluster_id,
                 "-c", str(config)], capture_output=True, text=True)
            if fmt.returncode != 0:
                raise BrokerError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [*self._jvm(libs), "kafka.Kafka", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        try:
            asyncio.run(wait_for_broker(self.bootstrap, timeout_s))
        except BrokerError:
            if proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-3000:]
                raise BrokerError(f"the Kafka broker exited; log tail:\n{tail}") from None
            raise
        return self.bootstrap

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker; return False when none was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return "stopped"
        return f"running (pid {pid}) at {self.bootstrap}"
