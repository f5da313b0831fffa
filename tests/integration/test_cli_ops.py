"""`wasmcloud inventory | apps | logs | placement` on the secured local default (`make up`'s
own program on the real Pulumi CLI: operator-mode NATS over TLS, two hosts, the counter),
run as a user runs them: the installed `wasmcloud` command, finding the tooling user's
credentials in the state folder by itself. Each answer is checked against what the control
interface and the wadm API say directly. And a host's log stream never makes it wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import nats
import pytest

from host_agent.host.log_stream import HostLogStream
from host_agent.lattice.client import CtlClient
from host_agent.lattice.host_logs import parse_host_log_record
from host_agent.lattice.subjects import HOST_LOG_PREFIX
from host_agent.lattice.wadm import WadmClient
from host_agent.local.credentials import local_nats_options
from host_agent.security.authority import LatticeAuthority
from host_agent.security.jwt import Permissions
from host_agent.security.permissions import Role, role_permissions
from pulumi_wasmcloud.provision.nats_config import JetStreamSettings
from tests.integration.test_local_security import LocalStack, secured  # noqa: F401 (fixture)
from tests.integration.test_nats_security import Node, nodes, secret_file  # noqa: F401
from tests.integration.test_nats_security import wait_for_line as wait_for_log
from tests.lattice import ROOT, HostProcess, NatsServer, refused_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WASMCLOUD = str(Path(sys.executable).parent / "wasmcloud")
# A user's shell after `make up`, minus anything that would point the CLI elsewhere.
CLEAN_ENV_DROP = ("WASH_CTL_CREDS", "NATS_CREDS", "WASH_CTL_TLS_CA_FILE", "NATS_CA",
                  "WASMCLOUD_NATS_URL", "WASMCLOUD_STATE_DIR", "WASMCLOUD_LATTICE")  # fmt: skip


def user_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CLEAN_ENV_DROP}


def wasmcloud(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command against the stack, as the README runs it (no creds flags)."""
    return subprocess.run(
        [WASMCLOUD, *args, "--nats-url", stack.nats_url, "--state-dir", str(stack.state)],
        cwd=ROOT,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def on_the_lattice(stack: LocalStack, work: Any) -> Any:
    """Run ``work(nc)`` connected as the tooling user (the README's Python)."""

    async def run() -> Any:
        nc = await nats.connect(stack.nats_url, **local_nats_options(stack.state))
        try:
            return await work(nc)
        finally:
            await nc.close()

    return asyncio.run(run())


def test_inventory_lists_both_hosts_and_what_runs_on_each_as_the_control_interface_says(
    secured: LocalStack,  # noqa: F811
) -> None:
    done = wasmcloud(secured, "inventory", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)

    async def direct(nc: Any) -> Any:
        return await CtlClient(nc, "default").read_hosts(wait=1.0)

    readings = on_the_lattice(secured, direct)
    expected = {
        r.host_id: {
            "labels": r.inventory["labels"],
            "components": {c["id"]: c["max_instances"] for c in r.inventory["components"]},
            "providers": sorted(p["id"] for p in r.inventory["providers"]),
        }
        for r in readings
        if r.inventory is not None
    }
    shown = {
        h["id"]: {
            "labels": h["labels"],
            "components": {c["id"]: c["max_instances"] for c in h["components"]},
            "providers": [p["id"] for p in h["providers"]],
        }
        for h in document["hosts"]
    }
    assert shown == expected
    hosts = secured.outputs()["hosts"]  # name -> id, as the stack made them
    assert set(shown) == set(hosts.values())
    by_name = {h["friendly_name"]: h for h in document["hosts"]}
    assert by_name["local-core"]["labels"]["tier"] == "core"
    assert by_name["local-edge"]["labels"]["tier"] == "edge"
    running = [w for h in document["hosts"] for w in h["components"] + h["providers"]]
    assert {w["application"] for w in running} == {"counter"}
    assert sum(c["max_instances"] for h in document["hosts"] for c in h["components"]) == 3

    table = wasmcloud(secured, "inventory")
    assert table.returncode == 0, table.stderr
    for host_id in hosts.values():
        assert host_id in table.stdout
    for workload in {w["id"] for w in running}:
        assert workload in table.stdout


def test_apps_list_and_status_match_the_wadm_api(secured: LocalStack) -> None:  # noqa: F811
    async def direct(nc: Any) -> Any:
        wadm = WadmClient(nc, "default")
        return await wadm.list(), await wadm.status("counter")

    listed, status = on_the_lattice(secured, direct)
    done = wasmcloud(secured, "apps", "--json")
    assert done.returncode == 0, done.stderr
    apps = json.loads(done.stdout)["apps"]
    assert [(a["name"], a["latest_version"], a["deployed_version"], a["status"]) for a in apps] == [
        (m.name, m.version, m.deployed_version, m.status.value) for m in listed.models
    ]
    assert apps[0]["name"] == "counter" and apps[0]["status"] == "deployed"

    one = wasmcloud(secured, "apps", "counter", "--json")
    assert one.returncode == 0, one.stderr
    detail = json.loads(one.stdout)
    assert detail["status"] == status.status.status.type.value == "deployed"
    assert [(s["kind"], s["name"], s["status"]) for s in detail["scalers"]] == [
        (s.kind, s.name, s.status.type.value) for s in status.status.scalers
    ]
    table = wasmcloud(secured, "apps")
    assert table.returncode == 0 and "counter" in table.stdout and "deployed" in table.stdout
    missing = wasmcloud(secured, "apps", "no-such-app")
    assert missing.returncode == 1
    assert "no application named 'no-such-app'" in missing.stderr


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """Each line of ``stream`` as it comes (a thread reads; the test waits on the queue)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str], text: str, seconds: float = 60.0) -> list[str]:
    """The lines up to the first that holds ``text``; fails after ``seconds``."""
    seen, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            break
        if text in seen[-1]:
            return seen
    raise AssertionError(f"no line with {text!r} within {seconds} s; saw {seen}")


@pytest.fixture
def follow(secured: LocalStack) -> Iterator[Any]:  # noqa: F811
    """Start `wasmcloud logs ARGS...` against the stack; killed at the end if still running."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        started.append(
            subprocess.Popen(
                [
                    WASMCLOUD,
                    "logs",
                    *args,
                    "--nats-url",
                    secured.nats_url,
                    "--state-dir",
                    str(secured.state),
                ],
                cwd=ROOT,
                env=user_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_logs_streams_a_line_the_host_writes_after_the_command_starts(
    secured: LocalStack,  # noqa: F811
    follow: Any,
) -> None:
    core = secured.outputs()["hosts"]["local-core"]
    by_name, as_json = follow("local-core"), follow(core, "--json")  # a name, an id
    outs = {}
    for process in (by_name, as_json):
        assert process.stdout is not None and process.stderr is not None
        outs[process.pid] = lines_of(process.stdout)
        wait_for_line(lines_of(process.stderr), f"following the logs of local-core ({core})")
    # Something the host logs now: registry credentials for a registry only this test names
    # (with a password, which no log line may show).
    marker = f"o1-{uuid.uuid4().hex[:12]}.example"
    password = f"pw-{uuid.uuid4().hex}"

    async def put_registry(nc: Any) -> Any:
        ctl = CtlClient(nc, "default")
        body = {marker: {"username": "u", "password": password}}
        return await ctl.request(ctl.subjects("registry", "put"), body)

    on_the_lattice(secured, put_registry)
    seen = wait_for_line(outs[by_name.pid], marker)
    assert "INFO" in seen[-1] and f"updated registry credentials for {marker}" in seen[-1]
    raw = wait_for_line(outs[as_json.pid], marker)
    record = json.loads(raw[-1])  # the record as the host sent it
    assert record["host_id"] == core and record["level"] == "info"
    assert record["message"] == f"updated registry credentials for {marker}"
    assert not any(password in shown for shown in seen + raw)
    for process in (by_name, as_json):
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def test_placement_prints_the_table_preview_shows(secured: LocalStack) -> None:  # noqa: F811
    done = wasmcloud(secured, "placement", str(secured.manifest))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["COMPONENT", "KIND", "SCALER", "HOST", "LABELS", "INSTANCES",
                                "CHANGE"]  # fmt: skip
    rows = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, _kind, _scaler, host, _labels, instances, *change = line.split()
        rows.setdefault(name, {})[host] = int(instances)
        assert change == [], f"the deployed counter should need no change: {line}"
    # The same placement the Pulumi provider computed for the Application's output.
    assert rows == secured.outputs()["placement"]
    assert "5 instance(s) on 2 of 2 host(s); 0 unplaced" in done.stdout

    as_json = json.loads(wasmcloud(secured, "placement", str(secured.manifest), "--json").stdout)
    ids = secured.outputs()["hosts"]
    assert as_json["placements"] == {
        name: {ids[host]: n for host, n in hosts.items()} for name, hosts in rows.items()
    }
    assert as_json["moves"] == {} and as_json["unplaced"] == {}


def test_no_lattice_there_says_how_to_start_one(tmp_path: Path) -> None:
    with refused_port() as port:
        done = subprocess.run(
            [WASMCLOUD, "inventory", "--nats-url", f"nats://127.0.0.1:{port}",
             "--state-dir", str(tmp_path)],
            cwd=ROOT, env=user_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 3
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in done.stderr
    assert "`make up`" in done.stderr and "--nats-url" in done.stderr


def test_a_host_never_waits_for_its_log_stream(nats_server: NatsServer) -> None:
    """A burst far beyond the queue: logging returns at once, the overflow is dropped and
    counted, and the next published record says how many were dropped before it."""

    async def burst() -> tuple[float, HostLogStream, list[Any]]:
        nc = await nats.connect(nats_server.url)
        received: list[Any] = []
        arrived = {50: asyncio.Event(), 51: asyncio.Event(), 52: asyncio.Event()}

        async def collect(msg: Any) -> None:
            received.append(parse_host_log_record(msg.data))
            if len(received) in arrived:
                arrived[len(received)].set()

        await nc.subscribe("wasmbus.log.default.HOST", cb=collect)
        await nc.flush()
        stream = HostLogStream(nc, "wasmbus.log.default.HOST", "HOST", max_queued=50)
        stream.start()
        log = logging.getLogger("o1.burst")
        log.setLevel(logging.INFO)
        try:
            started = time.perf_counter()
            for n in range(5000):  # no await: the publisher cannot run meanwhile
                log.info("record %d", n)
            spent = time.perf_counter() - started
            await asyncio.wait_for(arrived[50].wait(), 30)  # the queue, published
            log.info("after the burst")
            await asyncio.wait_for(arrived[51].wait(), 30)
            # A worker thread's record (a component's stdout is logged from its thread).
            worker = threading.Thread(target=log.info, args=("from a worker thread",))
            worker.start()
            worker.join()
            await asyncio.wait_for(arrived[52].wait(), 30)
        finally:
            await stream.stop()
            await nc.close()
        return spent, stream, received

    spent, stream, received = asyncio.run(burst())
    assert stream.sequence == 5002
    assert len(received) == stream.published == 52
    assert received[-1].message == "from a worker thread" and received[-1].dropped == 0
    received.pop()
    assert stream.dropped == 5000 - 50
    assert [r.sequence for r in received[:50]] == list(range(1, 51))
    assert all(r.dropped == 0 for r in received[:50])
    assert received[-1].message == "after the burst" and received[-1].sequence == 5001
    assert received[-1].dropped == 4950  # the gap is reported, not silent
    assert spent / 5000 < 0.001, f"logging took {spent / 5000 * 1e6:.0f} us a record"


def before_host_logs(permissions: Permissions) -> Permissions:
    """A role's permissions as users issued before host logs existed have them."""
    return replace(
        permissions,
        pub_allow=tuple(s for s in permissions.pub_allow if not s.startswith(HOST_LOG_PREFIX)),
        sub_allow=tuple(s for s in permissions.sub_allow if not s.startswith(HOST_LOG_PREFIX)),
    )


def test_users_from_before_host_logs_are_told_so_and_the_host_keeps_working(
    tmp_path: Path,
    nodes: list[Node],  # noqa: F811
) -> None:
    """A host whose user may not publish its records says so once (its refusal is not
    published, and refused, in a loop) and goes on serving; `logs` as a tooling user that
    may not follow them exits 3 saying why."""
    authority = LatticeAuthority.create("default")
    issuer = authority.user_issuer()
    node = Node("nats", tmp_path)
    node.write(authority, jetstream=JetStreamSettings(store_dir=str(tmp_path / "js")))
    nodes.append(node.start())
    old_host = issuer.issue_with(before_host_logs(role_permissions(Role.HOST, "default")), "h")
    tooling = issuer.issue_with(before_host_logs(role_permissions(Role.TOOLING, "default")), "t")
    host_creds = secret_file(tmp_path / "host.creds", old_host.creds())
    tooling_creds = secret_file(tmp_path / "tooling.creds", tooling.creds())
    host = HostProcess(
        node,  # type: ignore[arg-type]
        {},
        *("--nats-creds", str(host_creds), "--friendly-name", "old-host"),
        log=tmp_path / "host.log",
    )
    try:
        refusal = "may not publish its log records"
        wait_for_log(host.log, refusal)

        # Another line the host logs, after the refusal: it still serves the lattice.
        async def put_registry(nc: Any) -> Any:
            ctl = CtlClient(nc, "default")
            return await ctl.request(ctl.subjects("registry", "put"), {"after.example": {}})

        async def as_tooling() -> Any:
            nc = await nats.connect(node.address.url, user_credentials=str(tooling_creds))
            try:
                return await put_registry(nc)
            finally:
                await nc.close()

        asyncio.run(as_tooling())
        wait_for_log(host.log, "updated registry credentials for after.example")
        assert host.log.read_text().count(refusal) == 1

        follow = subprocess.run(
            [WASMCLOUD, "logs", "old-host", "--nats-url", node.address.url,
             "--creds", str(tooling_creds)],
            cwd=ROOT, env=user_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert follow.returncode == 3, follow.stderr
        assert "NATS does not let this user follow wasmbus.log.default.N" in follow.stderr
        assert "permissions violation for subscription" in follow.stderr
        assert "`pulumi up --replace`" in follow.stderr
        # No controller runs here: `apps` says so, and how to start one.
        apps = subprocess.run(
            [WASMCLOUD, "apps", "--nats-url", node.address.url, "--creds", str(tooling_creds)],
            cwd=ROOT, env=user_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert apps.returncode == 3
        assert "no controller answered on wadm.api.default.model.get" in apps.stderr
    finally:
        host.stop()
