"""Typed, frozen settings read from ``PRSM_*`` environment variables.

Every field names its environment variable in its description.

>>> s = Settings(home="/tmp/prsm-doc")
>>> s.topic("usage")
'prsm.usage'
>>> s.clickhouse_dsn.get_secret_value()
'chdb:///tmp/prsm-doc/clickhouse'
"""

from __future__ import annotations

import urllib.request
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prsm_events.kafka.connection import KafkaConnection, SaslMechanism, SecurityProtocol

__all__ = ["DEFAULT_BROKER_PORT", "TOPIC_BATCH_OVERHEAD", "Settings"]

DEFAULT_BROKER_PORT = 19092
TOPIC_BATCH_OVERHEAD = 1024
"""Bytes a topic's max.message.bytes allows beyond the largest record: the record batch's
framing around a record of PRSM_MAX_MESSAGE_BYTES."""


class Settings(BaseSettings):
    """Runtime configuration; build once per process with ``Settings()``."""

    model_config = SettingsConfigDict(env_prefix="PRSM_", frozen=True, extra="ignore",
                                      env_ignore_empty=True,  # VAR= means unset
                                      hide_input_in_errors=True)  # inputs hold secrets

    home: Path = Field(Path(".prsm"), description="PRSM_HOME: local state (broker, ClickHouse).")
    kafka_bootstrap: str = Field(
        "",
        description="PRSM_KAFKA_BOOTSTRAP: host:port list; empty means the `prsm dev up` broker.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PRSM_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT "
        "or SASL_SSL, for every Kafka client (worker, SDK, CLI).",
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="PRSM_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 "
        "(needed with SASL_*).",
    )
    kafka_username: str | None = Field(None, description="PRSM_KAFKA_USERNAME: SASL user.")
    kafka_password: SecretStr | None = Field(
        None, description="PRSM_KAFKA_PASSWORD: SASL password (never printed)."
    )
    kafka_ca_file: Path | None = Field(
        None, description="PRSM_KAFKA_CA_FILE: PEM file of the CA(s) that signed the brokers' "
        "certificates (default: the system's CAs).",
    )
    kafka_cert_file: Path | None = Field(
        None, description="PRSM_KAFKA_CERT_FILE: PEM client certificate, for mutual TLS."
    )
    kafka_key_file: Path | None = Field(
        None, description="PRSM_KAFKA_KEY_FILE: PEM private key of the client certificate."
    )
    kafka_key_password: SecretStr | None = Field(
        None, description="PRSM_KAFKA_KEY_PASSWORD: password of an encrypted key file."
    )
    broker_port: int = Field(
        DEFAULT_BROKER_PORT, description="PRSM_BROKER_PORT: port of the `prsm dev up` broker."
    )
    clickhouse_dsn: SecretStr = Field(
        SecretStr(""),
        description="PRSM_CLICKHOUSE_DSN: chdb:///path (embedded, default under PRSM_HOME) "
        "or http(s)://user:pass@host:8123/db.",
    )
    clickhouse_database: str = Field("prsm", description="PRSM_CLICKHOUSE_DATABASE.")
    topic_prefix: str = Field("prsm.", description="PRSM_TOPIC_PREFIX: prefix of every topic.")
    partitions: int = Field(
        4, ge=1, description="PRSM_PARTITIONS: partitions of per-tenant topics and changelogs."
    )
    replication_factor: int = Field(
        1, ge=1, description="PRSM_REPLICATION_FACTOR: replicas of topics that prsm creates."
    )
    app_id: str = Field("prsm", description="PRSM_APP_ID: Faust app id (consumer group).")
    web_port: int = Field(6066, description="PRSM_WEB_PORT: the worker's HTTP API port.")
    web_host: str = Field("127.0.0.1", description="PRSM_WEB_HOST: the worker's HTTP bind host "
                          "(loopback unless told otherwise).")
    web_advertised_url: str | None = Field(
        None, pattern=r"^https?://[^/\s]+$",
        description="PRSM_WEB_ADVERTISED_URL: where the other workers' answers tell the CLI "
        "to reach this worker's HTTP API (`prsm budget outlook` asks every worker of the "
        "group), e.g. http://10.0.0.7:6066 when it binds 0.0.0.0 (default: "
        "http://PRSM_WEB_HOST:PRSM_WEB_PORT).",
    )
    web_token: SecretStr | None = Field(
        None, description="PRSM_WEB_TOKEN: when set, every endpoint of the worker's HTTP API "
        "but /health needs `Authorization: Bearer <token>`; the CLI sends it.",
    )
    standby_replicas: int = Field(
        1, ge=0, le=8, description="PRSM_STANDBY_REPLICAS: standby replicas Faust keeps of each "
        "table partition on other workers (kept up to date from the changelogs), so that a "
        "takeover restores only what the standby has not read yet (0: the new owner reads the "
        "whole changelog).",
    )
    table_store: str = Field(
        "memory://",
        description="PRSM_TABLE_STORE: Faust table store, memory:// or rocksdb:// (extra "
        "`rocksdb`); both recover from the changelog topics.",
    )
    scoring_backend: str = Field(
        "auto", description="PRSM_SCORING_BACKEND: auto | numpy | cupy."
    )
    max_event_bytes: int = Field(
        64 * 1024, ge=256, description="PRSM_MAX_EVENT_BYTES: larger messages are dead-lettered "
        "(with a cut copy of the original when it does not fit PRSM_MAX_MESSAGE_BYTES).",
    )
    max_message_bytes: int = Field(
        1_000_000, ge=64 * 1024, le=100 * 1024 * 1024,
        description="PRSM_MAX_MESSAGE_BYTES: the largest record the worker writes (its "
        "producer's max_request_size; dead letters are cut to fit) and, with "
        f"{TOPIC_BATCH_OVERHEAD} bytes of batch framing added, the max.message.bytes of every "
        "prsm topic. At start the worker checks that each topic it writes accepts it.",
    )
    max_event_cost_usd: float = Field(
        1000.0, gt=0, description="PRSM_MAX_EVENT_COST_USD: the most one usage event may cost "
        "(given, or priced from the catalog); a costlier event is dead-lettered with code "
        "cost_over_cap, as a likely bug (a cost in cents, a token count in the wrong field) "
        "rather than spend.",
    )
    max_future_skew_s: float = Field(
        3600.0, description="PRSM_MAX_FUTURE_SKEW_S: reject events stamped further ahead."
    )
    max_event_age_s: float = Field(
        400 * 86400.0, description="PRSM_MAX_EVENT_AGE_S: reject events older than this."
    )
    dedup_horizon_s: float = Field(
        3600.0,
        description="PRSM_DEDUP_HORIZON_S: how long the worker remembers an event_id for its "
        "spend tables (held in memory, and in one table row per batch of new ids; ClickHouse "
        "reports collapse repeated "
        "event_ids whatever their age).",
    )
    stall_after_s: float = Field(
        60.0, gt=0, description="PRSM_STALL_AFTER_S: a partition holding unprocessed messages "
        "that has not moved forward for this long makes /health answer 503.",
    )
    health_interval_s: float = Field(
        2.0, gt=0, description="PRSM_HEALTH_INTERVAL_S: how often the worker probes the broker "
        "and looks for stalled partitions (what /health reports).",
    )
    log_repeat_s: float = Field(
        10.0, ge=0, description="PRSM_LOG_REPEAT_S: a repeated warning or error (same logger "
        "and message) is logged once per this interval, with a count of the repeats held back "
        "(0: log every one).",
    )
    batch_max: int = Field(
        2000, ge=1, description="PRSM_BATCH_MAX: most messages per ingest batch, and about "
        "400 bytes of messages per unit: a batch of single events holds at most this many, one "
        "of the SDK's batch envelopes (about 200 bytes an event) up to about twice as many."
    )
    batch_within_s: float = Field(
        0.2, gt=0, description="PRSM_BATCH_WITHIN_S: longest wait to fill a batch."
    )
    sink: Literal["worker", "off"] = Field(
        "worker", description="PRSM_SINK: where the ClickHouse sink runs (it consumes accepted "
        "events from the accepted topic and writes them to ClickHouse). worker: in this worker's "
        "process, which then owns the embedded store and serves reports; off: elsewhere (one "
        "other worker, or `prsm sink`), and this worker does not open ClickHouse.",
    )
    sink_retry_max_s: float = Field(
        30.0, gt=0, description="PRSM_SINK_RETRY_MAX_S: cap of the sink's retry backoff."
    )
    sink_flush_s: float = Field(
        0.5, gt=0, description="PRSM_SINK_FLUSH_S: longest the sink gathers accepted records "
        "before one insert (fewer, larger inserts; reports trail the tables by about this)."
    )
    metrics_budgets: int = Field(
        100, ge=0, description="PRSM_METRICS_BUDGETS: how many budgets /metrics exports gauges "
        "for: those this worker answers for with the highest used share of their limit "
        "(bounded label cardinality).",
    )
    snapshot_interval_s: float = Field(
        3600.0, ge=0, description="PRSM_SNAPSHOT_INTERVAL_S: every this many seconds of wall "
        "time (aligned: hourly snapshots come on the hour) the scoring tick writes each "
        "budget's figures and forecast to the budget_snapshots table (0: never).",
    )
    checkpoint_interval_s: float = Field(
        300.0, gt=0, description="PRSM_CHECKPOINT_INTERVAL_S: every this many seconds the "
        "scorer's checkpoint is saved under PRSM_HOME (and when the worker stops), and the "
        "state of each scope of the tenants the worker answers for is published on the "
        "scorer-states topic, for whichever worker owns the tenant next (also after a crash).",
    )
    reservation_ttl_s: float = Field(
        120.0, gt=0, description="PRSM_RESERVATION_TTL_S: an allowed request's reservation is "
        "released after this long unless its usage event (same request_id) settles it first.",
    )
    escrow_interval_s: float = Field(
        0.25, gt=0, le=60, description="PRSM_ESCROW_INTERVAL_S: how often a worker moves the "
        "allotments of global budgets between partitions (and the retry_after of a request "
        "deferred while allotment is on its way to its partition).",
    )
    unbudgeted: Literal["allow", "reject"] = Field(
        "allow", description="PRSM_UNBUDGETED: decision for a request no budget applies to "
        "(allow: allowed and recorded).",
    )
    default_est_input_tokens: int = Field(
        1000, ge=0, description="PRSM_DEFAULT_EST_INPUT_TOKENS: estimate when a request "
        "gives no est_input_tokens.",
    )
    default_est_output_tokens: int = Field(
        500, ge=0, description="PRSM_DEFAULT_EST_OUTPUT_TOKENS: estimate when a request "
        "gives no est_output_tokens.",
    )
    min_provider_availability: float = Field(
        0.5, ge=0, le=1, description="PRSM_MIN_PROVIDER_AVAILABILITY: below this share of ok "
        "outcomes (decaying) a provider counts as unavailable for a model.",
    )
    provider_half_life_s: float = Field(
        300.0, gt=0, description="PRSM_PROVIDER_HALF_LIFE_S: half-life of provider outcomes.",
    )
    exhausted_below: float = Field(
        0.01, ge=0, lt=1, description="PRSM_EXHAUSTED_BELOW: a hard budget with less than this "
        "share of its limit unspent is exhausted: requests are throttled and a block directive "
        "goes to the policies topic.",
    )
    fetch_max_wait_ms: int = Field(
        50, ge=1, le=1500, description="PRSM_FETCH_MAX_WAIT_MS: longest time the broker holds "
        "the worker's fetch while none of its partitions has new records. Under load a fetch "
        "can leave out the busy partitions, which then wait for it (Faust's 1500 ms stalled "
        "ingest); an idle worker sends about 1000 / this fetches a second.",
    )
    producer_linger_ms: float = Field(
        0.0, ge=0, description="PRSM_PRODUCER_LINGER_MS: the worker producer's linger. "
        "The agents hand their records over as record batches already, so waiting for more "
        "only adds latency (0: none).",
    )
    scoring_interval_s: float = Field(
        60.0, ge=0.1, description="PRSM_SCORING_INTERVAL_S: the batch scorer's tick: spend per "
        "scope over this interval feeds the forecasters, the anomaly detector and pacing.",
    )
    scoring_timescale_s: float = Field(
        600.0, gt=0, description="PRSM_SCORING_TIMESCALE_S: the time over which the pacing "
        "controller's gains and smoothing and the forecasters' level weight are defined (as "
        "tuned on the pacing benchmark), so that they behave alike whatever the scoring "
        "interval; tests that compress time set it to their interval.",
    )
    anomaly_threshold: float = Field(
        0.68, gt=0, lt=1, description="PRSM_ANOMALY_THRESHOLD: anomaly score (0-1, comparable "
        "across scopes) from which a scope's spend is anomalous.",
    )
    anomaly_min_excess_usd: float = Field(
        0.01, ge=0, description="PRSM_ANOMALY_MIN_EXCESS_USD: an anomaly must exceed the "
        "expected spend of its interval by at least this much.",
    )
    anomaly_throttle_fraction: float = Field(
        0.5, ge=0, le=1, description="PRSM_ANOMALY_THROTTLE_FRACTION: share of requests let "
        "through by an automatic anomaly throttle (budgets with anomaly_throttle).",
    )
    anomaly_throttle_s: float = Field(
        900.0, gt=0, description="PRSM_ANOMALY_THROTTLE_S: how long an anomaly throttle lasts.",
    )
    catalog_path: Path | None = Field(
        None, description="PRSM_CATALOG_PATH: a catalog JSON file instead of the shipped one."
    )
    alert_routes: Path | None = Field(
        None, description="PRSM_ALERT_ROUTES: a JSON file of alert routes (webhooks, Slack) "
        "per scope; every worker delivers its share of the alerts (docs/operations.md).",
    )
    alert_retry_for_s: float = Field(
        600.0, gt=0, description="PRSM_ALERT_RETRY_FOR_S: how long a failing delivery is "
        "retried (with backoff) before the alert is dead-lettered as alert_undelivered.",
    )
    alert_max_age_s: float = Field(
        3600.0, gt=0, description="PRSM_ALERT_MAX_AGE_S: alerts older than this when read are "
        "not delivered (a new delivery group starting on old alerts).",
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.max_event_bytes > self.max_message_bytes:
            raise ValueError(
                f"PRSM_MAX_EVENT_BYTES ({self.max_event_bytes}) must not exceed "
                f"PRSM_MAX_MESSAGE_BYTES ({self.max_message_bytes})")
        if not self.clickhouse_dsn.get_secret_value():
            dsn = f"chdb://{(self.home / 'clickhouse').absolute()}"
            object.__setattr__(self, "clickhouse_dsn", SecretStr(dsn))
        self.kafka  # noqa: B018 - validate the Kafka security settings now
        return self

    @cached_property
    def kafka(self) -> KafkaConnection:
        """How every Kafka client connects (bootstrap, TLS, SASL)."""
        return KafkaConnection(
            self.bootstrap, self.kafka_security_protocol, self.kafka_sasl_mechanism,
            self.kafka_username, self.kafka_password, self.kafka_ca_file, self.kafka_cert_file,
            self.kafka_key_file, self.kafka_key_password)

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap servers to use."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def embedded_clickhouse(self) -> bool:
        """True when the ClickHouse store is the in-process chDB engine."""
        return self.clickhouse_dsn.get_secret_value().startswith("chdb:")

    @property
    def topic_max_message_bytes(self) -> int:
        """``max.message.bytes`` of the prsm topics: the largest record plus batch framing."""
        return self.max_message_bytes + TOPIC_BATCH_OVERHEAD

    @property
    def changelog_configs(self) -> dict[str, str]:
        """Topic configs of the tables' changelogs beyond Faust's own (set at creation)."""
        return {"max.message.bytes": str(self.topic_max_message_bytes)}

    def topic(self, name: str) -> str:
        """Full topic name for a logical name (``usage`` -> ``prsm.usage``)."""
        return f"{self.topic_prefix}{name}"

    def as_env(self) -> dict[str, str]:
        """These settings as ``PRSM_*`` environment variables (to configure a child process).

        >>> Settings(home="/tmp/x", partitions=3).as_env()["PRSM_PARTITIONS"]
        '3'
        """
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"PRSM_{name.upper()}"] = str(value)
        return env

    @property
    def web_url(self) -> str:
        """Base URL of the worker's HTTP API."""
        return f"http://{self.web_host}:{self.web_port}"

    def web_request(self, path: str, base: str | None = None) -> urllib.request.Request:
        """A GET of ``path`` on the worker's HTTP API (or on the worker of the group at
        ``base``, which shares the token), with the bearer token when one is set.

        >>> Settings(web_token="s3cret").web_request("/stats").get_header("Authorization")
        'Bearer s3cret'
        >>> Settings().web_request("/budgets", "http://10.0.0.7:6067").full_url
        'http://10.0.0.7:6067/budgets'
        """
        headers = {}
        if self.web_token is not None:
            headers["Authorization"] = f"Bearer {self.web_token.get_secret_value()}"
        return urllib.request.Request(f"{base or self.web_url}{path}", headers=headers)
