"""Fuzz the control handlers of a real host process with generated JSON: every request
gets a well-formed reply and the host never goes down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_agent.lattice.subjects import CtlSubjects
from tests.lattice import HostProcess, NatsServer, first_host_id

OPERATIONS = [
    ("component", "scale"),
    ("component", "update"),
    ("provider", "start"),
    ("provider", "stop"),
    ("label", "put"),
    ("label", "del"),
    ("host", "get"),
]
LATTICE_WIDE = [
    ("link", "put"),
    ("link", "del"),
    ("link", "get"),
    ("config", "put"),
    ("config", "get"),
    ("config", "del"),
]
FIELDS = [
    "component_id",
    "component_ref",
    "count",
    "annotations",
    "provider_id",
    "provider_ref",
    "key",
    "value",
    "source_id",
    "target",
    "wit_namespace",
    "wit_package",
    "interfaces",
    "name",
    "config",
    "host_id",
    "target_config",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def on_loopback(body: dict[str, Any]) -> dict[str, Any]:
    """A string component_ref is an OCI reference the host would pull: keep generated ones
    on loopback (port 1, nothing listens) so the fuzz never reaches for docker.io."""
    ref = body.get("component_ref")
    if isinstance(ref, str) and not ref.startswith("file://"):
        return {**body, "component_ref": f"127.0.0.1:1/fuzz/{ref}"}
    return body


bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(
        lambda d: json.dumps(on_loopback(d)).encode()
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
)


class Lattice:
    def __init__(self, tmp: Path) -> None:
        self.server = NatsServer(tmp / "js").start()
        self.host = HostProcess(self.server, {"zone": "fuzz"}, log=tmp / "host.log")
        self.loop = asyncio.new_event_loop()
        self.nc = self.loop.run_until_complete(nats.connect(self.server.url))
        self.host_id = self.loop.run_until_complete(first_host_id(self.nc))

    def request(self, subject: str, body: bytes) -> dict[str, Any]:
        msg = self.loop.run_until_complete(self.nc.request(subject, body, timeout=5))
        reply: dict[str, Any] = json.loads(msg.data)
        return reply

    def close(self) -> None:
        self.loop.run_until_complete(self.nc.close())
        self.loop.close()
        self.host.stop()
        self.server.stop()


@pytest.fixture(scope="module")
def lattice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lattice]:
    lat = Lattice(tmp_path_factory.mktemp("fuzz"))
    yield lat
    lat.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    op=st.sampled_from(OPERATIONS + LATTICE_WIDE),
    body=bodies,
    name=st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True),
)
def test_every_control_request_gets_a_well_formed_reply(
    lattice: Lattice, op: tuple[str, str], body: bytes, name: str
) -> None:
    subjects = CtlSubjects()
    if op in LATTICE_WIDE:
        subject = subjects(*op, name) if op[0] == "config" else subjects(*op)
    else:
        subject = subjects(*op, lattice.host_id)
    reply = lattice.request(subject, body)
    assert isinstance(reply["success"], bool)
    assert isinstance(reply["message"], str)
    assert "response" not in reply or reply["response"] is not None
    if not reply["success"]:
        assert reply["message"], "a failure must say why"
        assert "internal error" not in reply["message"], reply["message"]


def test_host_is_still_alive_after_fuzzing(lattice: Lattice) -> None:
    assert lattice.host.proc.poll() is None
    reply = lattice.request(CtlSubjects().host_get(lattice.host_id), b"")
    assert reply["success"] and reply["response"]["host_id"] == lattice.host_id
