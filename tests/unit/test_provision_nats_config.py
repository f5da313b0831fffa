"""The nats-server config as rendered, and settings refused by name. The real
nats-server checks these configs in tests/integration/test_provision_nats.py."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from host_agent.security.authority import LatticeAuthority
from pulumi_wasmcloud.provision.nats_config import (
    NatsServerSettings,
    OperatorModeSettings,
    render,
)

CORE: dict[str, Any] = {
    "server_name": "core-1",
    "host": "198.18.0.2",
    "cluster": {"name": "core", "routes": ["198.18.0.3:6222", "198.18.0.4:6222"]},
    "jetstream": {"store_dir": "/var/lib/wasmcloud/nats", "max_file_store": 1 << 30},
    "leafnodes": {"listen_port": 7422},
}


def test_a_core_node_listens_on_its_address_with_routes_jetstream_and_a_leaf_listener() -> None:
    text = render(NatsServerSettings.model_validate(CORE))
    assert text.splitlines()[1:] == [
        'server_name: "core-1"',
        'listen: "198.18.0.2:4222"',
        'http: "198.18.0.2:8222"',
        "jetstream {",
        '  store_dir: "/var/lib/wasmcloud/nats"',
        "  max_memory_store: 268435456",
        "  max_file_store: 1073741824",
        "}",
        "cluster {",
        '  name: "core"',
        '  listen: "198.18.0.2:6222"',
        '  routes: ["nats-route://198.18.0.3:6222", "nats-route://198.18.0.4:6222"]',
        "}",
        "leafnodes {",
        '  listen: "198.18.0.2:7422"',
        "}",
    ]


def test_an_edge_node_connects_to_its_hubs_as_a_leaf() -> None:
    edge = {
        "server_name": "edge-1",
        "host": "198.18.0.5",
        "monitoring_port": None,
        "leafnodes": {"remotes": [{"urls": ["198.18.0.2:7422", "198.18.0.3:7422"]}]},
    }
    text = render(NatsServerSettings.model_validate(edge))
    assert "http:" not in text
    assert (
        'leafnodes {\n  remotes: [\n    { urls: ["nats-leaf://198.18.0.2:7422", '
        '"nats-leaf://198.18.0.3:7422"] }\n  ]\n}\n' in text
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_port": "4222"}, "client_port"),
        ({"client_port": 70000}, "client_port"),
        ({"server_name": 'core"1'}, "server_name"),
        ({"host": "198.18.0.2\ncluster {"}, "host"),
        ({"cluster": {"name": "core", "routes": ["198.18.0.3"]}}, "cluster.routes.0"),
        ({"jetstream": {"store_dir": "relative/dir"}}, "jetstream.store_dir"),
        ({"jetstream": {"store_dir": "/x", "max_file_store": "1G"}}, "jetstream.max_file_store"),
        ({"leafnodes": {}}, "listen_port, remotes"),
        ({"leafnodes": {"remotes": [{"urls": []}]}}, "leafnodes.remotes.0.urls"),
        ({"monitoring_port": 4222}, "monitoring_port and client_port are both 4222"),
        ({"debug": True}, "debug"),
    ],
)
def test_settings_of_the_wrong_shape_are_refused_by_name(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        NatsServerSettings.model_validate({**CORE, **change})
    assert field in str(refused.value)


# Operator mode and TLS -----------------------------------------------------------------

AUTHORITY = LatticeAuthority.create("blue")
OPERATOR = OperatorModeSettings.from_auth(AUTHORITY.server_auth()).model_dump()
TLS = {"cert_file": "/etc/wasmcloud/nats.pem", "key_file": "/etc/wasmcloud/nats-key.pem",
       "ca_file": "/etc/wasmcloud/ca.pem"}  # fmt: skip


def _tls_lines(indent: str, *, verify: bool | None = True) -> list[str]:
    lines = [
        f"{indent}tls {{",
        f'{indent}  cert_file: "/etc/wasmcloud/nats.pem"',
        f'{indent}  key_file: "/etc/wasmcloud/nats-key.pem"',
        f'{indent}  ca_file: "/etc/wasmcloud/ca.pem"',
    ]
    if verify is not None:
        lines.append(f"{indent}  verify: {'true' if verify else 'false'}")
    return [*lines, f"{indent}  timeout: 5", f"{indent}}}"]


def test_operator_mode_trusts_the_operator_and_preloads_every_account() -> None:
    text = render(NatsServerSettings.model_validate({**CORE, "operator": OPERATOR}))
    auth = AUTHORITY.server_auth()
    block = [
        f'operator: "{auth.operator_jwt}"',
        f'system_account: "{auth.system_account}"',
        "resolver: MEMORY",
        "resolver_preload: {",
        *(f'  "{key}": "{jwt}"' for key, jwt in sorted(auth.account_jwts.items())),
        "}",
        "max_control_line: 32768",
    ]
    lines = text.splitlines()
    start = lines.index(block[0])
    assert lines[start : start + len(block)] == block
    assert AUTHORITY.account_seed not in text and AUTHORITY.operator_seed not in text


def test_tls_files_go_to_the_client_route_and_leaf_listeners_and_remotes() -> None:
    core = {
        **CORE,
        "tls": TLS,
        "cluster": {**CORE["cluster"], "tls": TLS},
        "leafnodes": {"listen_port": 7422, "tls": {**TLS, "verify": False}},
    }
    lines = render(NatsServerSettings.model_validate(core)).splitlines()
    text = "\n".join(lines)
    assert "\n".join(_tls_lines("")) in text
    cluster = lines.index("cluster {")
    assert lines[cluster + 4 : cluster + 11] == _tls_lines("  ")
    leaf = lines.index("leafnodes {")
    assert lines[leaf + 2 : leaf + 9] == _tls_lines("  ", verify=False)


def test_an_operator_mode_leaf_remote_names_its_account_credentials_and_tls() -> None:
    edge = {
        "server_name": "edge-1",
        "host": "198.18.0.5",
        "operator": OPERATOR,
        "leafnodes": {
            "remotes": [
                {
                    "urls": ["198.18.0.2:7422"],
                    "account": AUTHORITY.account_public_key,
                    "credentials": "/etc/wasmcloud/leaf.creds",
                    "tls": TLS,
                }
            ]
        },
    }
    lines = render(NatsServerSettings.model_validate(edge)).splitlines()
    remotes = lines.index("  remotes: [")
    assert lines[remotes + 1 : remotes + 12] == [
        "    {",
        '      urls: ["nats-leaf://198.18.0.2:7422"]',
        f'      account: "{AUTHORITY.account_public_key}"',
        '      credentials: "/etc/wasmcloud/leaf.creds"',
        *_tls_lines("      ", verify=None),
        "    }",
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"operator": {**OPERATOR, "operator_jwt": "not a jwt"}}, "operator.operator_jwt"),
        ({"operator": {**OPERATOR, "system_account": "ABC"}}, "operator.system_account"),
        ({"operator": {**OPERATOR, "accounts": {}}}, "operator.accounts"),
        (
            {
                "operator": {
                    **OPERATOR,
                    "accounts": {AUTHORITY.account_public_key: AUTHORITY.account_jwt},
                }
            },
            "hold the system account's JWT",
        ),
        ({"operator": {**OPERATOR, "resolver": "FULL"}}, "operator.resolver"),
        ({"tls": {**TLS, "key_file": "relative.pem"}}, "tls.key_file"),
        ({"tls": {**TLS, "verify": "yes"}}, "tls.verify"),
        ({"tls": {"cert_file": "/a", "key_file": "/b"}}, "tls.ca_file"),
        ({"cluster": {"name": "core", "tls": {**TLS, "ca_file": 'x"'}}}, "cluster.tls.ca_file"),
        ({"leafnodes": {"remotes": [{"urls": ["198.18.0.2:7422"]}], "tls": TLS}}, "listen_port"),
        (
            {"operator": OPERATOR, "leafnodes": {"remotes": [{"urls": ["198.18.0.2:7422"]}]}},
            "leafnodes.remotes.0: operator mode needs its account and credentials",
        ),
        (
            {
                "leafnodes": {
                    "remotes": [
                        {"urls": ["198.18.0.2:7422"], "account": AUTHORITY.account_public_key}
                    ]
                }
            },
            "leafnodes.remotes.0.account needs operator mode",
        ),
        (
            {
                "operator": OPERATOR,
                "leafnodes": {
                    "remotes": [
                        {
                            "urls": ["198.18.0.2:7422"],
                            "credentials": "/l.creds",
                            "account": LatticeAuthority.create("x").account_public_key,
                        }
                    ]
                },
            },
            "leafnodes.remotes.0.account is not one of operator.accounts",
        ),
    ],
)
def test_operator_and_tls_settings_of_the_wrong_shape_are_refused_by_name(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        NatsServerSettings.model_validate({**CORE, **change})
    assert field in str(refused.value)
