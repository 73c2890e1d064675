"""Port picking and the messages for taken or doubled ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from cityscreen.errors import CityScreenError
from services.stack.ports import PortRequest, is_port_free, resolve_ports


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_zero_ports_get_distinct_free_ports() -> None:
    requests = [PortRequest(f"p{i}", 0, f"CITY_P{i}") for i in range(5)]
    chosen = resolve_ports(requests)
    assert sorted(chosen) == [f"p{i}" for i in range(5)]
    assert len(set(chosen.values())) == 5
    assert all(is_port_free(port) for port in chosen.values())


def test_a_fixed_free_port_is_kept(listening_port: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = int(sock.getsockname()[1])
    assert resolve_ports([PortRequest("Redis", free, "CITY_REDIS__PORT")]) == {"Redis": free}


def test_a_taken_port_names_the_setting_and_the_fix(listening_port: int) -> None:
    assert not is_port_free(listening_port)
    with pytest.raises(CityScreenError) as err:
        resolve_ports([PortRequest("Kafka", listening_port, "CITY_KAFKA__PORT")])
    message = str(err.value)
    assert f"Kafka port {listening_port}" in message
    assert "CITY_KAFKA__PORT=0" in message
    assert "already in use" in message


def test_the_same_port_twice_is_refused() -> None:
    requests = [
        PortRequest("Kafka", 41234, "CITY_KAFKA__PORT"),
        PortRequest("Redis", 41234, "CITY_REDIS__PORT"),
    ]
    with pytest.raises(CityScreenError, match="CITY_KAFKA__PORT, CITY_REDIS__PORT"):
        resolve_ports(requests)
