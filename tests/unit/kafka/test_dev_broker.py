import socket

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
