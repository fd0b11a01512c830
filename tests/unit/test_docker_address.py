"""Where a multi-node job's nodes find the main node's container, per network mode, without
an engine: host networking needs no question; otherwise the inspected NetworkSettings say."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.adapters.docker_runtime import DockerRuntime, _ipv4_address
from localbatch.errors import ContainerRuntimeError


class NoEngine:
    """A client that must not be used."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was asked ({name})")


def test_under_host_networking_the_address_is_loopback_without_asking_the_engine() -> None:
    assert DockerRuntime(network_mode="host", client=NoEngine()).address("abc") == "127.0.0.1"  # type: ignore[arg-type]


def test_the_default_bridge_and_user_networks_give_the_containers_ip() -> None:
    bridge = {"IPAddress": "172.17.0.5", "Networks": {"bridge": {"IPAddress": "172.17.0.5"}}}
    assert _ipv4_address("c", "bridge", bridge) == "172.17.0.5"
    user = {"IPAddress": "", "Networks": {"other": {"IPAddress": "10.1.0.9"}, "mnet": {"IPAddress": "10.2.0.3"}}}
    assert _ipv4_address("c", "mnet", user) == "10.2.0.3"
    assert _ipv4_address("c", "container:x", user) == "10.1.0.9"  # the first one it has


def test_no_address_is_an_error_naming_the_network() -> None:
    with pytest.raises(ContainerRuntimeError, match="has no IPv4 address on network 'none'"):
        _ipv4_address("abcdef0123456789", "none", {"IPAddress": "", "Networks": {"none": {"IPAddress": ""}}})
