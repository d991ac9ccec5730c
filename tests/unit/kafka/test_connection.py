"""KafkaConnection: the one builder of every Kafka client's security arguments."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr, ValidationError

from prsm_events.errors import ConfigError
from prsm_events.kafka.connection import KafkaConnection
from prsm_events.kafka.dev_certificates import DevCertificates
from prsm_events.settings import Settings

PW = "s3cret-Pa55"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    certificates = DevCertificates(tmp_path_factory.mktemp("tls"))
    certificates.ensure()
    return certificates


@pytest.mark.parametrize(("fields", "message"), [
    ({"security_protocol": "SASL_SSL", "username": "u", "password": SecretStr(PW)},
     "needs PRSM_KAFKA_SASL_MECHANISM"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": "u"},
     "needs PRSM_KAFKA_USERNAME and PRSM_KAFKA_PASSWORD"),
    ({"username": "u", "password": SecretStr(PW)}, "PLAINTEXT does not use them"),
    ({"ca_file": Path("/etc/hostname")}, "PLAINTEXT does not use TLS"),
    ({"security_protocol": "SSL", "cert_file": Path("/x.pem")}, "needs both"),
    ({"security_protocol": "SSL", "ca_file": Path("/nonexistent/ca.pem")}, "no such file"),
    ({"security_protocol": "TLS"}, "unknown Kafka security protocol"),
    ({"bootstrap": "k1:port"}, "not a host:port list"),
])
def test_settings_that_cannot_work_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KafkaConnection(**{"bootstrap": "b:9093", **fields})


def test_a_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load the Kafka TLS files"):
        KafkaConnection("b:9093", "SSL", ca_file=bad)


def test_client_args_per_protocol(tls: DevCertificates) -> None:
    assert KafkaConnection("b:9092").client_args() == {
        "bootstrap_servers": "b:9092", "security_protocol": "PLAINTEXT"}
    sasl = KafkaConnection("b:9093", "SASL_SSL", "SCRAM-SHA-256", "svc", SecretStr(PW),
                           ca_file=tls.ca_file).client_args()
    assert sasl["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (sasl["sasl_plain_username"], sasl["sasl_plain_password"]) == ("svc", PW)
    context = sasl["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    plain = KafkaConnection("b:9093", "SASL_PLAINTEXT", "PLAIN", "svc", SecretStr(PW))
    assert "ssl_context" not in plain.client_args()
    cert, key = tls.client("svc")
    mtls = KafkaConnection("b:9094", "SSL", ca_file=tls.ca_file, cert_file=cert, key_file=key)
    assert mtls.client_args()["security_protocol"] == "SSL"
    assert mtls.ssl_context is mtls.client_args()["ssl_context"]  # built once


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_the_worker_and_the_sdk_connect_alike(protocol: str, tls: DevCertificates) -> None:
    """Faust turns the worker's credentials into the same aiokafka arguments the SDK uses."""
    sasl = protocol.startswith("SASL")
    kafka = KafkaConnection(
        "b:9093", protocol,  # type: ignore[arg-type]
        "SCRAM-SHA-512" if sasl else None, "svc" if sasl else None,
        SecretStr(PW) if sasl else None, ca_file=tls.ca_file if "SSL" in protocol else None)
    ours = {k: v for k, v in kafka.client_args().items() if k != "bootstrap_servers"}
    faust = {k: v for k, v in credentials_to_aiokafka_auth(kafka.faust_credentials()).items()
             if v is not None}
    assert faust == ours


def test_secrets_are_never_printed() -> None:
    kafka = KafkaConnection("b:9093", "SASL_SSL", "PLAIN", "svc", SecretStr(PW))
    assert PW not in repr(kafka) and PW not in kafka.describe()
    assert PW not in repr(kafka.faust_credentials())
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
                        kafka_username="svc", kafka_password=PW, kafka_key_password="k-" + PW)
    assert PW not in repr(settings) and PW not in str(settings)
    assert settings.as_env()["PRSM_KAFKA_PASSWORD"] == PW  # handed to a child worker only
    with pytest.raises(ValidationError) as refused:
        Settings(kafka_password=PW)  # PLAINTEXT: refused, and the input is not echoed
    assert PW not in str(refused.value)


def test_settings_read_security_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRSM_KAFKA_BOOTSTRAP", "k1:9093,k2:9093")
    monkeypatch.setenv("PRSM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("PRSM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PRSM_KAFKA_USERNAME", "svc")
    monkeypatch.setenv("PRSM_KAFKA_PASSWORD", PW)
    monkeypatch.setenv("PRSM_KAFKA_CA_FILE", "")  # empty: unset
    kafka = Settings().kafka
    assert kafka.hosts == [("k1", 9093), ("k2", 9093)]
    assert kafka.client_args()["sasl_plain_password"] == PW
    assert kafka.with_bootstrap("k3:9093").client_args()["sasl_plain_username"] == "svc"
