from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from prsm_events.errors import ConfigError
from prsm_events.kafka.admin import TopicChange, require_co_partitioned
from prsm_events.kafka.topics import topic_specs
from prsm_events.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_every_design_topic_is_provisioned_with_explicit_policy():
    specs = {s.name: s for s in topic_specs("prsm.", 6)}
    assert set(specs) == {f"prsm.{n}" for n in (
        "usage", "requests", "decisions", "policies", "budgets", "catalog", "alerts", "dlq",
        "accepted", "snapshots", "allotments", "scorer-states")}
    for name in ("policies", "budgets", "catalog", "allotments"):
        assert specs[f"prsm.{name}"].configs["cleanup.policy"] == "compact"
    # the latest state of a scope handed over, for a week
    assert specs["prsm.scorer-states"].configs["cleanup.policy"] == "compact,delete"
    for spec in specs.values():
        assert "cleanup.policy" in spec.configs and "retention.ms" in spec.configs
    assert specs["prsm.allotments"].partitions == 1  # one order for every share and grant
    # co-partitioning: per-tenant topics share one partition count
    # co-partitioning: the sink's input keeps each event on its source partition
    assert {specs[f"prsm.{n}"].partitions
            for n in ("usage", "requests", "decisions", "accepted")} == {6}


def test_only_the_topics_read_together_must_have_the_configured_partition_count():
    settings = Settings(topic_prefix="acme.", partitions=4)
    unchanged = [TopicChange(f"acme.{n}", "unchanged") for n in ("usage", "requests", "decisions")]
    dlq_off = TopicChange("acme.dlq", "warning", "has 2 partitions, expected 4; left as is")
    require_co_partitioned(settings, [*unchanged, dlq_off])  # read on its own: allowed
    usage_off = TopicChange("acme.usage", "warning", "has 3 partitions, expected 4; left as is")
    with pytest.raises(ConfigError) as info:
        require_co_partitioned(settings, [*unchanged, dlq_off, usage_off])
    message = str(info.value)
    assert "acme.decisions, acme.requests, acme.usage must each have PRSM_PARTITIONS (4)" in message
    assert "acme.usage has 3 partitions, expected 4" in message
    assert "acme.dlq" not in message


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PRSM_HOME", str(tmp_path))
    monkeypatch.setenv("PRSM_TOPIC_PREFIX", "acme.")
    monkeypatch.setenv("PRSM_CLICKHOUSE_DSN", "https://u:secret@ch.example:8443/db")
    s = Settings()
    assert s.topic("dlq") == "acme.dlq"
    assert not s.embedded_clickhouse
    assert "secret" not in repr(s)
    assert s.bootstrap == "127.0.0.1:19092"
    monkeypatch.setenv("PRSM_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    assert Settings().bootstrap == "k1:9092,k2:9092"


def test_settings_are_frozen_and_checked():
    s = Settings()
    with pytest.raises(ValueError):
        s.partitions = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        Settings(partitions=0)


def test_docker_compose_matches_the_code():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "clickhouse", "worker"} <= set(services)
    env = services["worker"]["environment"]
    assert env["PRSM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["PRSM_CLICKHOUSE_DSN"].startswith("http://")
    assert services["worker"]["command"][:2] == ["prsm", "worker"] or \
        services["worker"]["command"] == ["prsm", "worker"]
    for var in env:
        assert var.removeprefix("PRSM_").lower() in Settings.model_fields, var
    assert (ROOT / services["worker"]["build"]["dockerfile"]).exists()
    assert "/health" in " ".join(services["worker"]["healthcheck"]["test"])
    assert env["PRSM_WEB_TOKEN"].startswith("${PRSM_WEB_TOKEN:?")  # bound to 0.0.0.0: required


def _compose_available() -> bool:
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="the docker compose client is not installed")
def test_docker_compose_config_is_valid():
    import subprocess

    done = subprocess.run(["docker", "compose", "config", "-q"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_one_setting_sizes_the_producer_the_topics_and_the_event_limit():
    s = Settings(max_message_bytes=2_000_000)
    specs = topic_specs("prsm.", 3, s.topic_max_message_bytes)
    assert {spec.configs["max.message.bytes"] for spec in specs} == {str(2_000_000 + 1024)}
    assert s.changelog_configs == {"max.message.bytes": str(2_000_000 + 1024)}
    with pytest.raises(ValueError, match="PRSM_MAX_EVENT_BYTES"):
        Settings(max_message_bytes=100_000, max_event_bytes=200_000)


def test_an_advertised_web_url_is_a_base_url_or_refused():
    assert Settings(web_advertised_url="https://w1.internal:6066").web_advertised_url == (
        "https://w1.internal:6066")
    for bad in ("w1.internal:6066", "http://w1.internal:6066/", "ftp://w1", "http://a b"):
        with pytest.raises(ValidationError, match="web_advertised_url"):
            Settings(web_advertised_url=bad)
