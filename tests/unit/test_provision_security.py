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
            "secrets backend TLS certificate: issue for core-1",
            "secrets backend keys (encryption, transit) and NATS user: make for lattice default",
        ],
        "edge-1": [
            "nats-server TLS certificate: issue for edge-1",
            "leaf node NATS user: issue for edge-1",
        ],
    }
    core, edge = made.nodes["core-1"], made.nodes["edge-1"]
    assert core.controller is not None and core.controller_tls is not None and core.leaf is None
    assert core.secrets_tls is not None and edge.secrets_tls is None
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


# --- the secrets backend on machines ----------------------------------------------------


def test_a_state_from_before_the_secrets_backend_loads_and_the_next_converge_makes_it(
    security: LatticeSecurity,
) -> None:
    old = security.to_state()
    del old["secretsBackend"]
    for node in old["nodes"].values():
        del node["secretsTls"]
    loaded = LatticeSecurity.from_state(old, "security")
    assert loaded.backend is None and loaded.nodes["core-1"].secrets_tls is None
    made, said = loaded.converge(NODES, "core", NOW + timedelta(days=1))
    # Said in the preview like the other sentences, values never; nothing else is made.
    assert said == {
        "core-1": [
            "secrets backend TLS certificate: issue for core-1",
            "secrets backend keys (encryption, transit) and NATS user: make for lattice default",
        ]
    }
    assert made.backend is not None and made.nodes["core-1"].secrets_tls is not None
    assert made.nodes["core-1"].controller == security.nodes["core-1"].controller
    assert made.nodes["edge-1"].server == security.nodes["edge-1"].server
    # Kept from then on: the encryption key must outlive the bucket.
    again, said = made.converge(NODES, "core", NOW + timedelta(days=2))
    assert said == {} and again.backend == made.backend
    assert LatticeSecurity.from_state(made.to_state(), "security").backend == made.backend


def test_a_damaged_secrets_backend_state_is_refused_by_field(security: LatticeSecurity) -> None:
    state = security.to_state()
    for damaged, field in (
        ({**state["secretsBackend"], "encryptionKey": 7}, "encryptionKey"),
        ({**state["secretsBackend"], "transitKey": "SXnot-a-seed"}, "transitKey"),
        ({**state["secretsBackend"], "user": None}, "user"),
    ):
        with pytest.raises(SecurityStateError, match=rf"security\.secretsBackend\.{field}"):
            LatticeSecurity.from_state({**state, "secretsBackend": damaged}, "security")


def test_the_backends_files_keys_and_user(security: LatticeSecurity) -> None:
    from host_agent.lattice.connection import NatsCredentials
    from host_agent.secrets.access import backend_access
    from host_agent.security.jwt import decode_claims

    files = security.secrets_backend_files("core-1")
    assert set(files) == {"creds", "ca.pem", "cert.pem", "key.pem"}
    assert security.backend is not None
    assert files["creds"] == security.backend.user.creds().encode()
    # Its own client certificate, not the controller's.
    node = security.nodes["core-1"]
    assert node.secrets_tls is not None and node.controller_tls is not None
    assert files["cert.pem"] != node.controller_tls.cert_pem.encode()
    seeds = security.secrets_backend_seeds()
    assert set(seeds) == {"ENCRYPTION_XKEY_SEED", "TRANSIT_XKEY_SEED"}
    assert all(seed.startswith("SX") for seed in seeds.values())
    # Its user answers the secrets API and reaches its bucket through the domain.
    user = NatsCredentials.from_creds(security.backend.user.creds(), "user")
    permissions = decode_claims(user.jwt, "user")["nats"]
    expected = backend_access("nats-kv", "core")
    assert permissions["pub"]["allow"] == list(expected.pub_allow)
    assert "$JS.core.API.$KV.WASMCLOUD_SECRETS.>" in permissions["pub"]["allow"]
    assert permissions["sub"]["allow"] == list(expected.sub_allow)
    assert leaks(repr(security.backend)) == []


def test_the_backend_service_is_planned_with_its_seeds_in_its_0600_environment_only(
    security: LatticeSecurity, tmp_path: Any
) -> None:
    import hashlib

    from pulumi_wasmcloud.provision.agent import (
        SECRETS_BACKEND_SERVICE,
        AgentFacts,
        InstalledAgent,
        SecretsBackendConfig,
        Wheelhouse,
        plan_remove_secrets_backend,
        plan_secrets_backend,
    )

    site = tmp_path / "site-packages.tar.gz"
    site.write_bytes(b"site-packages")
    wheels = Wheelhouse("0.1.0", "ab" * 32, (), site)
    facts = AgentFacts(
        machine=MACHINE,
        missing=(),
        installed=InstalledAgent("0.1.0", "ab" * 32),
        agent_dir=True,
        services={SECRETS_BACKEND_SERVICE: ServiceState(None, False, None)},
        leftovers=frozenset(),
        users=frozenset({"controller"}),
    )
    seeds = security.secrets_backend_seeds()
    config = SecretsBackendConfig(
        environment={"WADM_JETSTREAM_DOMAIN": "core", **seeds},
        replicas=3,
        files=security.secrets_backend_files("core-1"),
    )
    plan = plan_secrets_backend("core-1", facts, wheels, config)
    assert [c.description for c in plan] == [
        "secrets-backend service: define on core-1",
        "secrets backend config: write on core-1",
        "secrets backend NATS user and TLS files: write on core-1",
        "secrets-backend service: start on core-1",
    ]
    uploads = {c.path: c for change in plan for c in change.commands if isinstance(c, Upload)}
    run = uploads["/var/lib/wasmcloud/services/secrets-backend/run"].data.decode()
    assert "-m host_agent.secrets serve --replicas 3" in run
    environment = uploads["/etc/wasmcloud/secrets-backend.env.new"]
    assert environment.mode == 0o600
    assert all(seed.encode() in environment.data for seed in seeds.values())
    secret_uploads = [u for path, u in uploads.items() if path.startswith("/etc/wasmcloud/")]
    assert {u.mode for u in secret_uploads} == {0o600}
    # No seed nor key in any command line, the definition (argv) or a description.
    shown = [str(c) for change in plan for c in change.commands] + [run]
    shown += [c.description for c in plan]
    assert not leaks("\n".join(shown))
    # Converged: nothing to do; removed: its files with it (the install stays while the
    # controller uses it).
    written = {path.removesuffix(".new"): u.data for path, u in uploads.items()}
    converged = AgentFacts(
        **{
            **facts.__dict__,
            "services": {
                SECRETS_BACKEND_SERVICE: ServiceState(
                    hashlib.sha256(
                        written[f"/var/lib/wasmcloud/services/{SECRETS_BACKEND_SERVICE}/run"]
                    ).hexdigest(),
                    True,
                    hashlib.sha256(written["/etc/wasmcloud/secrets-backend.env"]).hexdigest(),
                )
            },
            "files": {
                SECRETS_BACKEND_SERVICE: {
                    suffix: hashlib.sha256(data).hexdigest()
                    for suffix, data in config.files.items()
                }
            },
        }
    )
    assert plan_secrets_backend("core-1", converged, wheels, config) == []
    removal = plan_remove_secrets_backend("core-1", converged)
    commands = "\n".join(str(c) for change in removal for c in change.commands)
    assert "/etc/wasmcloud/secrets-backend.key.pem" in commands
    assert "rm -rf /opt/wasmcloud/agent" not in commands
