"""How every Kafka client of the project connects: bootstrap servers, TLS and SASL.

One ``KafkaConnection`` (from ``Settings().kafka``, i.e. the ``PRSM_KAFKA_*`` variables)
builds the arguments of every client the project makes: the worker's Faust app, the SDK
(``UsagePublisher``, ``DecisionClient``, ``ThrottleCache``), the CLI and the admin and
compacted-view readers. Secrets stay in ``SecretStr`` and appear in no repr, log or error.

>>> KafkaConnection("b1:9093", "SASL_SSL", "SCRAM-SHA-512", "svc", SecretStr("pw"))
KafkaConnection(bootstrap='b1:9093', ...password=SecretStr('**********')...)
>>> KafkaConnection("b1:9092").client_args()
{'bootstrap_servers': 'b1:9092', 'security_protocol': 'PLAINTEXT'}
>>> KafkaConnection("b1:9092", "SASL_PLAINTEXT", "PLAIN")
Traceback (most recent call last):
...
prsm_events.errors.ConfigError: SASL_PLAINTEXT needs PRSM_KAFKA_USERNAME and PRSM_KAFKA_PASSWORD
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from pydantic import SecretStr

from prsm_events.errors import BrokerError, ConfigError
from prsm_events.kafka.aiokafka_compat import open_connection

__all__ = [
    "KafkaAccessError",
    "KafkaConnection",
    "SaslMechanism",
    "SecurityProtocol",
    "probe_connection",
    "quiet_aiokafka",
    "started",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


class KafkaAccessError(BrokerError):
    """The broker answered but refused this client: bad credentials, an untrusted or
    mismatched certificate, a mechanism or protocol it does not offer. Retrying cannot help."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where the cluster is and how to prove who we are; validated when built."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: SecretStr | None = dataclasses.field(default=None)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None

    def __post_init__(self) -> None:
        try:
            self.hosts  # noqa: B018
        except ValueError:
            raise ConfigError(f"PRSM_KAFKA_BOOTSTRAP: not a host:port list: {self.bootstrap!r}"
                              ) from None
        protocol = self.security_protocol
        if protocol not in ("PLAINTEXT", "SSL", *_SASL):
            raise ConfigError(f"unknown Kafka security protocol {protocol!r}; use PLAINTEXT, "
                              "SSL, SASL_PLAINTEXT or SASL_SSL")
        if protocol in _SASL:
            if self.sasl_mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
                raise ConfigError(f"{protocol} needs PRSM_KAFKA_SASL_MECHANISM: PLAIN, "
                                  "SCRAM-SHA-256 or SCRAM-SHA-512")
            if not self.username or self.password is None:
                raise ConfigError(f"{protocol} needs PRSM_KAFKA_USERNAME and PRSM_KAFKA_PASSWORD")
        elif self.username or self.password is not None:
            raise ConfigError(f"PRSM_KAFKA_USERNAME/PASSWORD are set but {protocol} does not use "
                              "them; set PRSM_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)")
        tls_files = (self.ca_file, self.cert_file, self.key_file)
        if protocol not in _TLS and any(f is not None for f in tls_files):
            raise ConfigError(f"TLS files are set but {protocol} does not use TLS; set "
                              "PRSM_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("mutual TLS needs both PRSM_KAFKA_CERT_FILE and PRSM_KAFKA_KEY_FILE")
        if protocol in _TLS:
            self.ssl_context  # noqa: B018 - build it now: a bad file fails here, not later

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (server verified against ``ca_file``, else the system's CAs)."""
        if self.security_protocol not in _TLS:
            return None
        for name, path in (("PRSM_KAFKA_CA_FILE", self.ca_file),
                           ("PRSM_KAFKA_CERT_FILE", self.cert_file),
                           ("PRSM_KAFKA_KEY_FILE", self.key_file)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{name}: no such file {path}")
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file) if self.ca_file else None)
            if self.cert_file is not None:
                password = self.key_password.get_secret_value() if self.key_password else None
                context.load_cert_chain(str(self.cert_file), str(self.key_file), password)
        except ssl.SSLError as exc:
            raise ConfigError(f"cannot load the Kafka TLS files: {exc.reason or exc}") from None
        return context

    @property
    def hosts(self) -> list[tuple[str, int]]:
        """The bootstrap servers as (host, port) pairs (Kafka's port 9092 when none is given).

        >>> KafkaConnection("k1:9093, k2,[::1]:9094").hosts
        [('k1', 9093), ('k2', 9092), ('::1', 9094)]
        """
        pairs = []
        for item in (part.strip() for part in self.bootstrap.split(",")):
            host, colon, port = item.rpartition(":")
            if not colon or (host.count(":") and not host.endswith("]")):
                host, port = item, "9092"  # no port (or a bare IPv6 address)
            pairs.append((host.strip("[]"), int(port)))
        return pairs

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        args: dict[str, Any] = {"bootstrap_servers": self.bootstrap,
                                "security_protocol": self.security_protocol}
        if self.security_protocol in _TLS:
            args["ssl_context"] = self.ssl_context
        if self.security_protocol in _SASL:
            assert self.password is not None
            args.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                        sasl_plain_password=self.password.get_secret_value())
        return args

    def faust_credentials(self) -> Any:
        """The same as Faust ``broker_credentials`` (None for PLAINTEXT).

        Imported lazily: only the worker needs Faust.
        """
        import faust

        if self.security_protocol in _SASL:
            assert self.password is not None
            return faust.SASLCredentials(
                username=self.username, password=self.password.get_secret_value(),
                ssl_context=self.ssl_context, mechanism=self.sasl_mechanism)
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context)
        return None

    def with_bootstrap(self, bootstrap: str) -> KafkaConnection:
        """The same security towards other bootstrap servers."""
        return dataclasses.replace(self, bootstrap=bootstrap)

    def describe(self) -> str:
        """Who connects where, for messages: never a secret.

        >>> KafkaConnection("b:1", "SASL_SSL", "PLAIN", "svc", SecretStr("pw")).describe()
        "Kafka at b:1 (SASL_SSL, PLAIN as 'svc')"
        """
        who = f", {self.sasl_mechanism} as {self.username!r}" if self.username else ""
        return f"Kafka at {self.bootstrap} ({self.security_protocol}{who})"


def _access_problem(connection: KafkaConnection, exc: BaseException) -> str | None:
    """What a failed connection attempt says about our access, or None when it is only
    unreachable (worth a retry)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = (f"the CA in PRSM_KAFKA_CA_FILE ({connection.ca_file})" if connection.ca_file
                   else "the system's CAs (set PRSM_KAFKA_CA_FILE to the cluster's CA)")
        return f"its TLS certificate is not trusted by {trusted}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return (f"the TLS handshake failed ({exc.reason or exc}); is the listener "
                f"{connection.security_protocol}, and does it want a client certificate?")
    if isinstance(exc, SaslAuthenticationFailed):
        return f"it refused the credentials of {connection.username!r}: {exc}"
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"it does not offer SASL {connection.sasl_mechanism}: {exc}"
    if isinstance(exc, KafkaError) and "sasl" in str(exc).lower():
        return f"SASL failed: {exc}"
    return None


async def probe_connection(connection: KafkaConnection, timeout_s: float = 10.0) -> None:
    """Connect (TLS, SASL) to each bootstrap server until one answers.

    Raise ``KafkaAccessError`` at once when a server refuses us (retrying cannot help) and
    ``BrokerError`` when none can be reached.
    """
    last: BaseException | None = None
    args = connection.client_args()
    del args["bootstrap_servers"]
    for host, port in connection.hosts:
        try:
            conn = await asyncio.wait_for(open_connection(
                host, port, request_timeout_ms=int(timeout_s * 1000), **args), timeout_s)
        except (OSError, KafkaError, TimeoutError) as exc:
            problem = _access_problem(connection, exc)
            if problem is not None:
                raise KafkaAccessError(f"{connection.describe()}: {problem}") from None
            last = exc
            continue
        conn.close()
        return
    raise BrokerError(f"cannot reach {connection.describe()}: {last or 'no answer'}")


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@contextlib.contextmanager
def quiet_aiokafka() -> Iterator[None]:
    """aiokafka's own error logs held back meanwhile (callers report failures better)."""
    log = logging.getLogger("aiokafka")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


async def started(client: _Startable, connection: KafkaConnection) -> None:
    """``await client.start()``; when it cannot bootstrap, say why in one clear error
    (``KafkaAccessError`` for refused access, else ``BrokerError``)."""
    try:
        with quiet_aiokafka():  # a failure is told once, below, and better
            await client.start()
    except KafkaConnectionError:
        await client.stop()
        with quiet_aiokafka():
            await probe_connection(connection)
        raise BrokerError(f"cannot reach {connection.describe()}") from None
