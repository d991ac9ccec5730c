"""The integration tests' ports (``tests.integration.conftest.free_port``)."""

from pathlib import Path

from tests.integration.conftest import LISTEN_PORTS, free_port


def test_ports_are_below_the_ephemeral_ones_and_handed_out_once():
    """A broker stopped and started again binds its ports twice: meanwhile an outgoing
    connection must not be handed one of them, as the kernel hands out its ephemeral ports."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    first_ephemeral = int(ranges.read_text().split()[0]) if ranges.exists() else 49152
    taken = []
    for _ in range(20):
        port = free_port(count=3)
        taken.extend(range(port, port + 3))
    assert all(LISTEN_PORTS[0] <= p < first_ephemeral for p in taken)
    assert len(set(taken)) == len(taken)
