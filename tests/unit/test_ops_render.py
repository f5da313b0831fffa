"""The day-2 views' pure parts: the --json documents and tables of `wasmcloud inventory`,
`apps`, `logs` and `placement`, host selection by id or name, where the commands find
their credentials, and what a host's log record may carry (secrets redacted)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from host_agent.cli import ops as ops_cli
from host_agent.cli.wasmcloud import build_parser
from host_agent.host.log_stream import log_entry, redact
from host_agent.lattice.client import HostReading
from host_agent.lattice.host_logs import parse_host_log_record
from host_agent.lattice.strict import BadRequest
from host_agent.lattice.wadm_types import ListModelsResponse, StatusResponse
from host_agent.model import load_manifest
from host_agent.ops.apps import apps_document, render_apps, render_status, status_document
from host_agent.ops.inventory import inventory_document, render_inventory
from host_agent.ops.logs import format_log_record
from host_agent.ops.placement import placement_document, plan_live, render_live_plan
from host_agent.ops.tables import to_text
from host_agent.placement.lattice_view import HostSnapshot, LatticeSnapshot
from tests.lattice import ROOT

CORE, EDGE = "N" + "C" * 55, "N" + "E" * 55
APPSPEC = "wasmcloud.dev/appspec"


def reading(host_id: str, name: str, labels: dict[str, str], **inventory: Any) -> HostReading:
    """A host as the control interface answers: its ping reply and host.get inventory."""
    ping = {
        "id": host_id,
        "friendly_name": name,
        "labels": labels,
        "version": "0.1.0",
        "uptime_seconds": 3723,
        "uptime_human": "1h 2m 3s",
        "lattice": "default",
    }
    body = {"host_id": host_id, "labels": labels, "components": [], "providers": [], **inventory}
    return HostReading(ping, body)


def two_hosts() -> list[HostReading]:
    return [
        reading(
            EDGE,
            "local-edge",
            {"tier": "edge"},
            components=[
                {
                    "id": "counter-counter",
                    "image_ref": "127.0.0.1:5000/counter@sha256:ab",
                    "max_instances": 3,
                    "annotations": {APPSPEC: "counter"},
                    "revision": 0,
                },
            ],
        ),
        reading(
            CORE,
            "local-core",
            {"tier": "core", "region": "local"},
            providers=[
                {
                    "id": "counter-httpserver",
                    "image_ref": "builtin://http-server",
                    "annotations": {APPSPEC: "counter"},
                },
                {"id": "by-hand", "image_ref": "builtin://keyvalue-inmemory", "annotations": None},
            ],
        ),
    ]


def test_inventory_json_lists_each_host_and_what_runs_there() -> None:
    document = inventory_document("default", two_hosts())
    assert [h["id"] for h in document["hosts"]] == [CORE, EDGE]  # sorted by id
    core, edge = document["hosts"]
    assert core["friendly_name"] == "local-core"
    assert list(core["labels"]) == ["region", "tier"]
    assert core["uptime_seconds"] == 3723 and core["version"] == "0.1.0"
    assert core["providers"] == [
        {"id": "by-hand", "image_ref": "builtin://keyvalue-inmemory", "application": None},
        {
            "id": "counter-httpserver",
            "image_ref": "builtin://http-server",
            "application": "counter",
        },
    ]
    assert edge["components"] == [
        {
            "id": "counter-counter",
            "image_ref": "127.0.0.1:5000/counter@sha256:ab",
            "max_instances": 3,
            "application": "counter",
        },
    ]
    assert core["error"] is None
    json.dumps(document)  # what --json prints


def test_inventory_table_shows_hosts_then_what_runs_on_each() -> None:
    text = to_text(render_inventory(inventory_document("default", two_hosts())))
    lines = text.splitlines()
    core_row = next(line for line in lines if line.startswith(CORE))
    assert "local-core" in core_row and "region=local,tier=core" in core_row
    assert "1h 2m 3s" in core_row and "0 (0 instances)" in core_row
    running = [line.split() for line in lines[lines.index("Running") :]]
    assert running[1] == ["HOST", "KIND", "ID", "INSTANCES", "APPLICATION", "IMAGE"]
    assert [
        "local-edge",
        "component",
        "counter-counter",
        "3",
        "counter",
        "127.0.0.1:5000/counter@sha256:ab",
    ] in running
    assert ["local-core", "provider", "by-hand", "1", "-", "builtin://keyvalue-inmemory"] in running


def test_a_host_whose_inventory_does_not_read_is_listed_with_the_reason() -> None:
    bad = reading(CORE, "local-core", {}, components=[{"id": "x", "max_instances": "3"}])
    silent = HostReading({"id": EDGE, "friendly_name": "local-edge"}, None, "TimeoutError")
    document = inventory_document("default", [bad, silent])
    core, edge = document["hosts"]
    assert "components[0].max_instances: expected a whole number" in core["error"]
    assert core["components"] == [] and edge["error"] == "TimeoutError"
    text = to_text(render_inventory(document))
    assert "! local-core: inventory unavailable: invalid host inventory" in text
    assert "! local-edge: inventory unavailable: TimeoutError" in text


def test_an_empty_lattice_says_so() -> None:
    text = to_text(render_inventory(inventory_document("prod", [])))
    assert text.startswith("no hosts answered in lattice 'prod'")


def test_apps_list_and_status_follow_the_wadm_replies() -> None:
    listed = ListModelsResponse.model_validate_json(
        json.dumps(
            {
                "result": "success",
                "message": "",
                "models": [
                    {
                        "name": "zeta",
                        "version": "v2",
                        "description": None,
                        "deployed_version": None,
                        "detailed_status": {},
                        "status": "undeployed",
                        "status_message": None,
                    },
                    {
                        "name": "counter",
                        "version": "v0.1.0",
                        "description": "the tutorial's",
                        "deployed_version": "v0.1.0",
                        "detailed_status": {},
                        "status": "deployed",
                        "status_message": "",
                    },
                ],
            }
        )
    )
    document = apps_document("default", listed)
    assert [a["name"] for a in document["apps"]] == ["counter", "zeta"]
    assert document["apps"][1] == {
        "name": "zeta",
        "latest_version": "v2",
        "deployed_version": None,
        "status": "undeployed",
        "status_message": "",
        "description": None,
    }
    rows = [line.split() for line in to_text(render_apps(document)).splitlines()]
    assert ["counter", "v0.1.0", "v0.1.0", "deployed", "the", "tutorial's"] in rows
    assert ["zeta", "-", "v2", "undeployed"] in rows

    status = StatusResponse.model_validate_json(
        json.dumps(
            {
                "result": "ok",
                "status": {
                    "status": {"type": "reconciling", "message": "waiting for hosts"},
                    "scalers": [
                        {
                            "id": "s1",
                            "kind": "SpreadScaler",
                            "name": "counter",
                            "status": {"type": "deployed", "message": ""},
                        },
                        {
                            "id": "s2",
                            "kind": "LinkScaler",
                            "name": "counter -> kv",
                            "status": {"type": "failed", "message": "no such target"},
                        },
                    ],
                },
            }
        )
    )
    assert status.status is not None
    detail = status_document("default", "counter", status.status)
    assert detail["status"] == "reconciling" and detail["message"] == "waiting for hosts"
    assert detail["scalers"][1]["status"] == "failed"
    text = to_text(render_status(detail))
    assert text.splitlines()[0] == "counter: reconciling (waiting for hosts)"
    last = text.splitlines()[-1]
    assert last.split() == ["counter", "->", "kv", "LinkScaler", "failed", "no", "such", "target"]


def test_a_log_record_prints_as_one_line_after_any_gap() -> None:
    record = parse_host_log_record(
        json.dumps(
            {
                "time": "2026-12-01T02:03:04.567Z",
                "host_id": CORE,
                "level": "warning",
                "logger": "host_agent.host",
                "message": "link watch interrupted",
                "fields": {"attempt": 2, "error": "Traceback\n  boom"},
                "sequence": 9,
                "dropped": 4,
            }
        ).encode()
    )
    assert format_log_record(record) == [
        "... 4 earlier record(s) dropped by the host (its log queue was full or NATS was away)",
        "2026-12-01T02:03:04.567Z WARNING host_agent.host: link watch interrupted  attempt=2",
        "    Traceback",
        "      boom",
    ]


def test_a_log_record_of_the_wrong_shape_is_refused_naming_the_field() -> None:
    text = {"time": "t", "host_id": CORE, "level": "info", "logger": "x", "message": "m"}
    with pytest.raises(
        BadRequest, match=r'sequence: expected a whole number, got a string \("7"\)'
    ):
        parse_host_log_record(json.dumps({**text, "sequence": "7"}).encode())


def test_what_a_host_publishes_holds_no_secret() -> None:
    seed = "SU" + "A" * 56
    host_seed = "SN" + "B" * 56
    key = "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----"
    assert redact(f"redis://:pw1@10.0.0.1:6379/0 and {seed} and {key}") == (
        "redis://:***@10.0.0.1:6379/0 and *** and ***"
    )
    try:
        raise ConnectionError(f"auth failed at redis://u:pw2@h:1?password=pw3 as {host_seed}")
    except ConnectionError:
        record = logging.getLogger("t").makeRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "cannot reach %s",
            ("nats://a:pw4@h:4222",),
            sys.exc_info(),
            extra={"config": {"url": "redis://:pw5@h", "keys": ["top-secret-6"]}},
        )
    entry = log_entry(record, CORE, 1, secrets=("top-secret-6",))
    text = json.dumps(entry)
    for secret in ("pw1", "pw2", "pw3", "pw4", "pw5", "top-secret-6", host_seed):
        assert secret not in text, secret
    assert entry["message"] == "cannot reach nats://a:***@h:4222"
    assert entry["fields"]["config"] == {"url": "redis://:***@h", "keys": ["***"]}
    assert "redis://u:***@h:1?password=***" in entry["fields"]["error"]
    assert entry["level"] == "error" and entry["sequence"] == 1
    parse_host_log_record(json.dumps({**entry, "dropped": 0}).encode())  # the wire shape


def test_placement_plans_on_the_live_hosts_and_names_them() -> None:
    manifest = load_manifest(ROOT / "examples" / "counter" / "wadm.yaml").manifest
    hosts = {
        h.id: h
        for h in (
            HostSnapshot(CORE, "local-core", {"tier": "core", "region": "local"}),
            HostSnapshot(EDGE, "local-edge", {"tier": "edge", "region": "local"}),
        )
    }
    live = plan_live(manifest, LatticeSnapshot(hosts))
    text = render_live_plan(live)
    assert text.splitlines()[0].split() == [
        "COMPONENT",
        "KIND",
        "SCALER",
        "HOST",
        "LABELS",
        "INSTANCES",
        "CHANGE",
    ]
    assert CORE not in text and "local-core" in text and "local-edge" in text
    assert "+" in text  # nothing runs yet: every instance is a change
    document = placement_document("default", live)
    assert document["hosts"][CORE]["name"] == "local-core"
    assert document["placements"] == live.plan.placements()
    assert all(set(hosts_) <= {CORE, EDGE} for hosts_ in document["placements"].values())


def hosts_doc(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"id": i, "friendly_name": n} for i, n in pairs]


def test_logs_finds_a_host_by_id_or_name_and_says_which_exist() -> None:
    hosts = hosts_doc((CORE, "local-core"), (EDGE, "local-edge"))
    assert ops_cli.resolve_host("local-edge", hosts) == (EDGE, "local-edge")
    assert ops_cli.resolve_host(CORE, hosts) == (CORE, "local-core")
    with pytest.raises(ops_cli.NotFound, match=r"no host 'nope' answered.*local-core \(NC"):
        ops_cli.resolve_host("nope", hosts)
    twins = hosts_doc((CORE, "twin"), (EDGE, "twin"))
    with pytest.raises(ops_cli.NotFound, match="2 hosts are named 'twin'; give the host id"):
        ops_cli.resolve_host("twin", twins)


def options(*argv: str) -> argparse.Namespace:
    return build_parser({}).parse_args(["inventory", *argv])


def test_the_commands_find_the_local_credentials_by_themselves(tmp_path: Path) -> None:
    from host_agent.security.authority import LatticeAuthority
    from host_agent.security.permissions import Role

    user = LatticeAuthority.create("default").user_issuer().issue(Role.TOOLING, "t", "default")
    (tmp_path / "nats.creds").write_text(user.creds())
    found = ops_cli.Connection.from_options(options("--state-dir", str(tmp_path)), {})
    assert found.credentials == user and found.tls is None
    assert str(found.address) == "nats://127.0.0.1:4222" and found.lattice == "default"
    # What `wasmcloud env` exports wins over the folder; a flag over both.
    other = tmp_path / "other.creds"
    other.write_text(
        LatticeAuthority.create("x").user_issuer().issue(Role.TOOLING, "o", "x").creds()
    )
    env = {"WASH_CTL_CREDS": str(other), "WASMCLOUD_STATE_DIR": str(tmp_path)}
    assert ops_cli.Connection.from_options(options(), env).credentials != user
    flagged = ops_cli.Connection.from_options(options("--creds", str(tmp_path / "nats.creds")), env)
    assert flagged.credentials == user
    # Nothing anywhere: a plain lattice, no user.
    plain = ops_cli.Connection.from_options(options("--state-dir", str(tmp_path / "none")), {})
    assert plain.credentials is None and plain.tls is None


def test_bad_options_exit_2_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from host_agent.cli.wasmcloud import main

    assert main(["inventory", "--creds", str(tmp_path / "missing.creds")], {}) == 2
    assert "cannot read the NATS creds file" in capsys.readouterr().err
    assert main(["apps", "--nats-url", "127.0.0.1:4222"], {}) == 2
    assert "has no scheme" in capsys.readouterr().err
    assert main(["logs", "h", "--tls-cert", str(tmp_path / "c.pem")], {}) == 2
    assert "needs the CA" in capsys.readouterr().err
