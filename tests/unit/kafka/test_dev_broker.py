import multiprocessing
import os
import socket
import textwrap
from pathlib import Path

import pytest

from prsm_events.errors import BrokerError
from prsm_events.kafka.dev_broker import LocalBroker


def test_refuses_to_start_on_a_port_someone_else_holds(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} is already in use"):
            LocalBroker(tmp_path, port).start()


def test_status_and_stop_without_a_broker(tmp_path):
    broker = LocalBroker(tmp_path, 1)
    assert broker.status() == "stopped"
    assert broker.stop() is False


def test_pom_pins_kafka_39(tmp_path):
    assert LocalBroker(tmp_path, 1).kafka_version().startswith("3.9.")


def _resolve(home: str) -> str:
    return str(LocalBroker(Path(home), 1).resolve())


def test_brokers_resolving_at_once_download_the_jars_once(tmp_path, monkeypatch):
    """Two processes (two test sessions, two ``prsm dev up``) resolving at once: Maven runs
    once, and neither deletes the jars the other is copying."""
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"  # stands in for Maven: slow, and writes one jar where it is told
    mvn.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo run >> {calls}
        sleep 0.5
        for arg in "$@"; do
          case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac
        done
        mkdir -p "$out" && echo jar > "$out/kafka.jar"
        """))
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PRSM_KAFKA_CACHE", str(tmp_path / "cache"))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        found = pool.map(_resolve, [str(tmp_path / "a"), str(tmp_path / "b")])
    assert calls.read_text().splitlines() == ["run"]
    for libs in found:
        assert (Path(libs) / "kafka.jar").read_text() == "jar\n"
    assert _resolve(str(tmp_path / "c")) == found[0]  # a later one finds them too
    assert calls.read_text().splitlines() == ["run"]
