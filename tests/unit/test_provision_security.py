"""A lattice on machines' security (provision/security.py) and how its files are planned
(operations.py for nats-server, agent.py for the controller and hosts): what is made once
and kept, what is reissued and said, what a machine is sent, and the reload that takes a
rotated certificate without a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from host_agent.security.permissions import Role, role_permissions
from host_agent.security.tls import expires_at, subject_alt_names
from pulumi_wasmcloud.provision.changes import Shell, Upload
from pulumi_wasmcloud.provision.facts import MachineFacts, OsRelease
from pulumi_wasmcloud.provision.operations import (
    NatsServerBinary,
    NatsServerFacts,
    plan_nats_server,
)
from pulumi_wasmcloud.provision.secret_files import (
    LEAF_CREDS_FILE,
    NATS_CA_FILE,
    NATS_CERT_FILE,
    NATS_KEY_FILE,
)
from pulumi_wasmcloud.provision.security import (
    LatticeSecurity,
    NodeRole,
    SecurityStateError,
    role_in_domain,
)
from pulumi_wasmcloud.provision.service import ServiceState
from tests.secured_nats import leaks

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NODES = {
    "core-1": NodeRole("198.18.0.2", core=True),
    "edge-1": NodeRole("198.18.0.5", core=False),
}


@pytest.fixture(scope="module")
def security() -> LatticeSecurity:
    made, _ = LatticeSecurity.create("default", "core", NOW).converge(NODES, "core", NOW)
    return made


def test_each_node_gets_what_its_role_needs_and_the_sentences_say_so() -> None:
    made, said = LatticeSecurity.create("default", "core", NOW).converge(NODES, "core", NOW)
    assert said == {
        "core-1": [
            "nats-server TLS certificate: issue for core-1",
            "controller NATS user: issue for core-1",
            "controller TLS certificate: issue for core-1",
        ],
        "edge-1": [
            "nats-server TLS certificate: issue for edge-1",
            "leaf node NATS user: issue for edge-1",
        ],
    }
    core, edge = made.nodes["core-1"], made.nodes["edge-1"]
    assert core.controller is not None and core.controller_tls is not None and core.leaf is None
    assert edge.leaf is not None and edge.controller is None
    # The SAN is the machine's address: what clients, routes and leaf remotes dial.
    assert subject_alt_names(core.server.cert_pem) == ((), ("198.18.0.2",))
    assert not leaks("\n".join(s for sentences in said.values() for s in sentences))


def test_a_second_converge_keeps_everything(security: LatticeSecurity) -> None:
    again, said = security.converge(NODES, "core", NOW + timedelta(days=1))
    assert said == {}
    assert again.to_state() == security.to_state()


def test_a_certificate_within_30_days_of_expiry_or_for_another_address_is_reissued(
    security: LatticeSecurity,
) -> None:
    late = NOW + timedelta(days=340)  # the 365-day certificates expire within 30 days
    rotated, said = security.converge(NODES, "core", late)
    assert [s.split(" (")[0] for s in said["edge-1"]] == ["nats-server TLS certificate: reissue"]
    assert said["edge-1"][0].startswith("nats-server TLS certificate: reissue (expires 2027-")
    assert any(s.startswith("controller TLS certificate: reissue") for s in said["core-1"])
    assert expires_at(rotated.nodes["edge-1"].server.cert_pem) > expires_at(
        security.nodes["edge-1"].server.cert_pem
    )
    # Users do not expire: kept.
    assert rotated.nodes["edge-1"].leaf == security.nodes["edge-1"].leaf
    moved, said = security.converge(
        {**NODES, "edge-1": NodeRole("198.18.0.9", core=False)}, "core", NOW
    )
    assert said == {
        "edge-1": [
            "nats-server TLS certificate: reissue (the machine's address is now 198.18.0.9) "
            "for edge-1"
        ]
    }
    assert subject_alt_names(moved.nodes["edge-1"].server.cert_pem)[1] == ("198.18.0.9",)
    # A machine left out is forgotten.
    fewer, _ = security.converge({"core-1": NODES["core-1"]}, "core", NOW)
    assert set(fewer.nodes) == {"core-1"}


def test_core_certificates_name_every_core_node_so_failover_to_a_discovered_one_verifies(
    security: LatticeSecurity,
) -> None:
    # A client that dialled core-1 and fails over to core-2 (learned by IP from the
    # cluster) verifies core-2's certificate against core-1's address.
    grown = {**NODES, "core-2": NodeRole("198.18.0.3", core=True)}
    made, said = security.converge(grown, "core", NOW)
    assert subject_alt_names(made.nodes["core-2"].server.cert_pem)[1] == (
        "198.18.0.3",
        "198.18.0.2",
    )
    assert subject_alt_names(made.nodes["core-1"].server.cert_pem)[1] == (
        "198.18.0.2",
        "198.18.0.3",
    )
    assert said["core-1"] == [
        "nats-server TLS certificate: reissue (the cluster's addresses are now "
        "198.18.0.2, 198.18.0.3) for core-1"
    ]
    # A leaf node's clients have no other server to fail over to: its own address only.
    assert "edge-1" not in said
    assert subject_alt_names(made.nodes["edge-1"].server.cert_pem)[1] == ("198.18.0.5",)


def test_state_round_trips_and_a_damaged_one_is_refused_by_field(
    security: LatticeSecurity,
) -> None:
    state = security.to_state()
    assert LatticeSecurity.from_state(state, "security").to_state() == state
    assert leaks(repr(security)) == []
    broken = {**state, "nodes": {"edge-1": {**state["nodes"]["edge-1"], "leaf": 3}}}
    with pytest.raises(SecurityStateError, match=r"security\.nodes\.edge-1\.leaf"):
        LatticeSecurity.from_state(broken, "security")
    with pytest.raises(SecurityStateError, match=r"security has unknown fields extra"):
        LatticeSecurity.from_state({**state, "extra": 1}, "security")


def test_each_machine_is_sent_its_own_files(security: LatticeSecurity) -> None:
    assert set(security.nats_files("core-1")) == {NATS_CA_FILE, NATS_CERT_FILE, NATS_KEY_FILE}
    edge = security.nats_files("edge-1")
    assert set(edge) == {NATS_CA_FILE, NATS_CERT_FILE, NATS_KEY_FILE, LEAF_CREDS_FILE}
    assert edge[NATS_KEY_FILE] == security.nodes["edge-1"].server.key_pem.encode()
    controller = security.controller_files("core-1", "controller")
    assert set(controller) == {"creds", "ca.pem", "cert.pem", "key.pem", "issuer.json"}


# --- planning the files --------------------------------------------------------------------

MACHINE = MachineFacts(
    os=OsRelease(id="debian", version_id="12"),
    arch="x86_64",
    python="3.11.2",
    systemd=False,
)
BINARY = NatsServerBinary("2.12.1", b"\x7fELF-binary", "x86_64")


def running(config: str, files: dict[str, bytes]) -> NatsServerFacts:
    """A machine where nats-server runs ``config`` with ``files``."""
    import hashlib

    return NatsServerFacts(
        MACHINE,
        "2.12.1",
        hashlib.sha256(config.encode()).hexdigest(),
        ServiceState(_definition_digest(), True),
        {path: hashlib.sha256(data).hexdigest() for path, data in files.items()},
    )


def _definition_digest() -> str:
    import hashlib

    from pulumi_wasmcloud.provision.operations import nats_server_service
    from pulumi_wasmcloud.provision.service import render_definition

    return hashlib.sha256(render_definition(nats_server_service(), False).encode()).hexdigest()


def test_rotated_files_alone_reload_the_running_server(security: LatticeSecurity) -> None:
    files = security.nats_files("edge-1")
    assert plan_nats_server("edge-1", running("config", files), BINARY, "config", files) == []
    rotated, _ = security.converge(NODES, "core", NOW + timedelta(days=340))
    plan = plan_nats_server(
        "edge-1", running("config", files), BINARY, "config", rotated.nats_files("edge-1")
    )
    assert [c.description for c in plan] == [
        "nats-server secrets: replace its TLS certificate, its TLS key on edge-1",
        "nats-server service: reload on edge-1 (new certificates or credentials; no restart)",
    ]
    uploads = [c for c in plan[0].commands if isinstance(c, Upload)]
    assert [(u.path, u.mode) for u in uploads] == [(NATS_CERT_FILE, 0o600), (NATS_KEY_FILE, 0o600)]
    [reload] = plan[1].commands
    assert isinstance(reload, Shell) and '--signal reload="$pid"' in reload.command
    # No secret in any command line (uploads go over stdin).
    assert not leaks("\n".join(str(c) for change in plan for c in change.commands))


def test_a_new_config_with_new_files_restarts_instead(security: LatticeSecurity) -> None:
    files = security.nats_files("edge-1")
    rotated, _ = security.converge(NODES, "core", NOW + timedelta(days=340))
    plan = plan_nats_server(
        "edge-1", running("config", files), BINARY, "config 2", rotated.nats_files("edge-1")
    )
    described = [c.description for c in plan]
    assert described[0].startswith("nats-server secrets: replace")
    assert "nats-server service: restart on edge-1" in described
    assert not any("reload" in d for d in described)


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def _may_publish(permissions: Any, subject: str) -> bool:
    allowed = any(_matches(p, subject) for p in permissions.pub_allow)
    return allowed and not any(_matches(p, subject) for p in permissions.pub_deny)


def test_a_machine_hosts_user_serves_its_providers_application_buckets_not_wadms() -> None:
    host = role_in_domain(Role.HOST, "default", "core")
    # keyvalue-nats, connected as its host's user, keeps the app's bucket "default" (from
    # a core node the domain is mapped away; from a leaf node it is not).
    for subject in (
        "$KV.default.counter",
        "$JS.core.API.$KV.default.counter",
        "$JS.API.STREAM.CREATE.KV_default",
        "$JS.core.API.STREAM.INFO.KV_default",
    ):
        assert _may_publish(host, subject), subject
    # Its own lattice buckets still; the controller's and the secrets backend's never.
    assert _may_publish(host, "$KV.LATTICEDATA_default.link")
    assert _may_publish(host, "$JS.API.STREAM.INFO.KV_CONFIGDATA_default")
    for subject in (
        "$KV.wadm_manifests.default-app",
        "$JS.core.API.STREAM.DELETE.KV_wadm_manifests",
        "$KV.WASMCLOUD_SECRETS.password",
    ):
        assert not _may_publish(host, subject), subject
    # Other roles are role_permissions' own.
    assert role_in_domain(Role.TOOLING, "default", "core") == role_permissions(
        Role.TOOLING, "default", js_domain="core"
    )
