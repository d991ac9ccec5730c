"""A local, real Apache Kafka broker (KRaft, single node) for development and tests.

The broker jars come from Maven Central through the machine's ``mvn`` (a small pom shipped
with the package), are cached under ``PRSM_KAFKA_CACHE`` (default ``~/.cache/prsm-events``)
and run with the machine's ``java``. Data and logs live under ``PRSM_HOME/kafka``.

``secure=True`` (``prsm dev up --secure``) starts a broker like a managed cluster's instead,
under ``PRSM_HOME/kafka-secure``: clients connect with SASL_SSL (SCRAM-SHA-256/512, or PLAIN
for the admin) on ``port``, or with mutual TLS on ``port + 2`` (the certificate's common name
is the principal); certificates come from a throwaway CA (``DevCertificates``); the
authorizer is on, ``admin`` is the only super user, and every other user needs ACLs
(``tool("kafka-acls", ...)``). The admin's password is made at first start and kept (mode
0600) in ``client.env``, the ``PRSM_KAFKA_*`` settings of a client that connects as admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import SecretStr

from prsm_events.errors import BrokerError
from prsm_events.kafka.admin import wait_for_broker
from prsm_events.kafka.connection import KafkaConnection, SaslMechanism
from prsm_events.kafka.dev_certificates import DevCertificates

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


_TOOLS = {"kafka-acls": "kafka.admin.AclCommand", "kafka-configs": "kafka.admin.ConfigCommand"}
ADMIN = "admin"
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required"
_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule required"


@dataclass
class LocalBroker:
    """The broker of ``prsm dev up``: ``resolve()``, ``start()``, ``stop()``, ``status()``."""

    home: Path
    port: int = 19092
    heap: str = "512m"
    secure: bool = False

    @property
    def dir(self) -> Path:
        return self.home.absolute() / ("kafka-secure" if self.secure else "kafka")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_bootstrap(self) -> str:
        """The mutual-TLS listener of a secure broker."""
        return f"127.0.0.1:{self.port + 2}"

    @property
    def certificates(self) -> DevCertificates:
        return DevCertificates(self.dir / "tls")

    def admin_password(self) -> SecretStr:
        """The secure broker's admin password (made once, kept under its directory)."""
        path = self.dir / "admin.password"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(18))
            path.chmod(0o600)
        return SecretStr(path.read_text().strip())

    @property
    def connection(self) -> KafkaConnection:
        """How a client reaches this broker as its administrator."""
        if not self.secure:
            return KafkaConnection(self.bootstrap)
        return self.user_connection(ADMIN, self.admin_password())

    def user_connection(self, user: str, password: SecretStr,
                        mechanism: SaslMechanism = "SCRAM-SHA-512") -> KafkaConnection:
        """How ``user`` reaches the secure broker over SASL_SSL."""
        return KafkaConnection(self.bootstrap, "SASL_SSL", mechanism, user, password,
                               ca_file=self.certificates.ca_file)

    def client_env(self) -> dict[str, str]:
        """The ``PRSM_KAFKA_*`` settings of a client that connects as admin."""
        if not self.secure:
            return {"PRSM_KAFKA_BOOTSTRAP": self.bootstrap}
        return {"PRSM_KAFKA_BOOTSTRAP": self.bootstrap,
                "PRSM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "PRSM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "PRSM_KAFKA_USERNAME": ADMIN,
                "PRSM_KAFKA_PASSWORD": self.admin_password().get_secret_value(),
                "PRSM_KAFKA_CA_FILE": str(self.certificates.ca_file)}

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
        libs = self.cache / "libs"
        if (libs / ".complete").exists():
            return libs
        self.cache.mkdir(parents=True, exist_ok=True)
        # two brokers started at once (two test processes, two homes) resolve one at a time:
        # the second finds the first's jars instead of deleting them while they are copied
        with open(self.cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (libs / ".complete").exists():
                self._download(libs)
        return libs

    def _download(self, libs: Path) -> None:
        version = self.kafka_version()
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (`mvn`) is needed to fetch Kafka; install it or set "
                              "PRSM_KAFKA_BOOTSTRAP to an existing cluster")
        pom = self.cache / "pom.xml"
        pom.write_text(resources.files("prsm_events").joinpath("data/kafka-pom.xml").read_text())
        if libs.exists():
            shutil.rmtree(libs)
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BrokerError(f"mvn could not resolve Kafka {version}:\n{done.stdout}{done.stderr}")
        (libs / ".complete").touch()

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
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=8388608
log.retention.check.interval.ms=60000
controller.listener.names=CONTROLLER
""" + (self._secure_props(controller) if self.secure else self._plain_props(controller))
        config = self.dir / "server.properties"
        config.write_text(props)
        config.chmod(0o600)
        (self.dir / "log4j.properties").write_text(_LOG4J)
        return config

    def _plain_props(self, controller: int) -> str:
        return f"""listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
"""

    def _secure_props(self, controller: int) -> str:
        self.certificates.ensure()
        pw = self.admin_password().get_secret_value()
        tls = self.certificates
        return f"""listeners=SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller},\
SSL://{self.tls_bootstrap}
advertised.listeners=SASL_SSL://127.0.0.1:{self.port},SSL://{self.tls_bootstrap}
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
inter.broker.listener.name=SASL_SSL
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={_PLAIN} username="{ADMIN}" password="{pw}" \
user_{ADMIN}="{pw}";
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={_SCRAM} username="{ADMIN}" password="{pw}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={_SCRAM};
listener.name.sasl_ssl.plain.sasl.jaas.config={_PLAIN} user_{ADMIN}="{pw}";
listener.name.ssl.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT
ssl.keystore.type=PEM
ssl.keystore.location={tls.broker_keystore}
ssl.truststore.type=PEM
ssl.truststore.location={tls.ca_file}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:{ADMIN}
allow.everyone.if.no.acl.found=false
"""

    def _jvm(self, libs: Path, heap: str | None = None) -> list[str]:
        heap = heap or self.heap
        return [self._java(), f"-Xmx{heap}", f"-Xms{heap}",
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
            asyncio.run(wait_for_broker(self.connection, timeout_s))
            return self.bootstrap
        for port in (self.port, self.port + 1, *((self.port + 2,) if self.secure else ())):
            if _port_in_use(port):
                raise BrokerError(
                    f"port {port} is already in use by another process: stop it, choose another "
                    "PRSM_BROKER_PORT, or point PRSM_KAFKA_BOOTSTRAP at that broker")
        libs = self.resolve()
        config = self._write_config()
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = uuid.uuid4().hex[:22]
            scram = (["--add-scram", f"SCRAM-SHA-512=[name={ADMIN},password="
                      f"{self.admin_password().get_secret_value()}]"] if self.secure else [])
            fmt = subprocess.run(
                [*self._jvm(libs), "kafka.tools.StorageTool", "format", "-t", cluster_id,
                 "-c", str(config), *scram], capture_output=True, text=True)
            if fmt.returncode != 0:
                raise BrokerError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [*self._jvm(libs), "kafka.Kafka", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        if self.secure:
            env = self.dir / "client.env"
            env.write_text("".join(f"{k}={v}\n" for k, v in self.client_env().items()))
            env.chmod(0o600)
        try:
            asyncio.run(wait_for_broker(self.connection, timeout_s))
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

    def tool(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a Kafka admin tool (``kafka-acls``, ``kafka-configs``) from the broker's own
        jars against this broker, as its administrator; ``args`` as the tool takes them."""
        if name not in _TOOLS:
            raise BrokerError(f"unknown tool {name!r}; one of {', '.join(sorted(_TOOLS))}")
        java, *rest = self._jvm(self.resolve(), heap="256m")
        # a tool runs a second or two: JIT tiers and a parallel collector cost more to start
        # than they save (about a fifth of the tool's time)
        command = [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *rest, _TOOLS[name],
                   "--bootstrap-server", self.bootstrap]
        if self.secure:
            command += ["--command-config", str(self._admin_properties())]
        return subprocess.run([*command, *args], capture_output=True, text=True)

    def add_user(self, user: str, password: SecretStr) -> None:
        """Create (or change) a SCRAM-SHA-256 and -512 user on the secure broker."""
        if not self.secure:
            raise BrokerError("users exist only on the secure broker (`prsm dev up --secure`)")
        secret = self.dir / f"scram-{user}.properties"  # not on a command line (ps shows it)
        pw = password.get_secret_value()
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):  # one per request
            secret.touch(mode=0o600)
            secret.write_text(f"{mechanism}=password={pw}\n")
            try:
                done = self.tool("kafka-configs", "--alter", "--entity-type", "users",
                                 "--entity-name", user, "--add-config-file", str(secret))
            finally:
                secret.unlink()
            if done.returncode != 0:
                raise BrokerError(f"kafka-configs could not add user {user}: "
                                  f"{done.stderr.strip()[-500:]}")

    def _admin_properties(self) -> Path:
        """The admin's client properties for Kafka's tools, written whole and then moved in
        place (tools run side by side never read half a file)."""
        path = self.dir / "admin-client.properties"
        text = ("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                f'sasl.jaas.config={_SCRAM} username="{ADMIN}" '
                f'password="{self.admin_password().get_secret_value()}";\n'
                f"ssl.truststore.type=PEM\nssl.truststore.location={self.certificates.ca_file}\n")
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                return path
        fd, name = tempfile.mkstemp(dir=self.dir, prefix=".admin-client.")  # mode 0600
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(name, path)
        return path

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return "stopped"
        return f"running (pid {pid}) at {self.bootstrap}"
