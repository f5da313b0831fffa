"""The provider plugin's start and end, which every preview and up waits for: each
resource type's handler module loads when the type is first used (and loads on its own,
in a fresh interpreter), what only some types need (boto3, paramiko, wasmtime, aiohttp)
is not loaded before, and the process ends with status 0 when the engine interrupts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pulumi_wasmcloud.provider.provider import HANDLER_CLASSES
from tests.machines import KeyPair

ROOT = Path(__file__).resolve().parents[2]
# Modules the plugin must not load before a resource type needs them: (loaded with the
# types but Ec2Machine (a Lattice also serves lattices on machines over SSH); loaded with
# an Ec2Machine too). wasmtime: the provider never runs components.
HEAVY = {
    "boto3": (False, True),
    "paramiko": (True, True),
    "wasmtime": (False, False),
}


# What a preview of a new stack never does, so its plugin process must not import it: talk
# to NATS or read a lattice (nats-py, the connection, the control and wadm clients), make
# or read a lattice's authority and certificates (cryptography's x509), start a local
# lattice, survey or change machines over SSH (the agent and its wheelhouse), push to a
# registry (host_agent.oci). Each is imported where it is used (~0.1 s of every preview).
NOT_IN_A_NEW_STACKS_PREVIEW = (
    "nats",
    "host_agent.lattice.connection",
    "host_agent.lattice.client",
    "host_agent.lattice.wadm",
    "host_agent.local.lattice",
    "host_agent.security.authority",
    "host_agent.security.tls",
    "cryptography.x509",
    "pulumi_wasmcloud.provision.agent",
    "pulumi_wasmcloud.provision.wheelhouse",
    "pulumi_wasmcloud.provision.security",
    "pulumi_wasmcloud.provision.registry",
    "host_agent.oci",
)


def run_python(code: str, *args: str) -> str:
    """``code`` in a fresh interpreter (nothing this test process imported counts)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_resource_type_of_the_sdk_has_a_handler() -> None:
    # The SDK registers the schema's resources (tests/unit/test_sdk_schema.py checks it).
    from pulumi_wasmcloud.schema.resources import RESOURCES

    assert {r.token for r in RESOURCES} == set(HANDLER_CLASSES)


@pytest.mark.parametrize("type_token", sorted(HANDLER_CLASSES))
def test_each_handler_loads_on_its_own_and_checks_inputs(type_token: str) -> None:
    """Its module imported first in a fresh interpreter, through the provider's table,
    then a check of empty inputs: failures naming their field (or none: a Lattice has
    defaults for all), never an exception (a lazy import gone wrong in the module or in
    what check uses fails here)."""
    code = f"""
import asyncio, json
from pulumi_wasmcloud.provider.provider import WasmcloudProvider
handler = WasmcloudProvider(None).handler({type_token!r})
checked = asyncio.run(handler.check({{}}, {{}}))
print(json.dumps([[f.property, f.reason] for f in checked.failures]))
"""
    failures = json.loads(run_python(code))
    assert all(prop and reason for prop, reason in failures)


def test_an_unknown_type_is_named_with_the_known_ones() -> None:
    from pulumi_wasmcloud.provider.provider import WasmcloudProvider

    with pytest.raises(ValueError) as raised:
        WasmcloudProvider(None).handler("wasmcloud:index:Nope")
    assert "wasmcloud:index:Nope" in str(raised.value)
    assert "wasmcloud:index:Lattice" in str(raised.value)


def test_the_plugin_starts_without_what_only_some_types_need() -> None:
    code = """
import json, sys
from pulumi_wasmcloud.provider import main
for name in main.DEFERRED_MODULES:
    main.defer_loading(name)
from pulumi_wasmcloud.provider.provider import EC2_MACHINE, HANDLER_CLASSES, WasmcloudProvider
def loaded():
    return {name: type(sys.modules[name]).__name__ for name in sys.modules}
provider = WasmcloudProvider(None)
at_start = loaded()
for token in sorted(set(HANDLER_CLASSES) - {EC2_MACHINE}):
    provider.handler(token)
without_ec2 = loaded()
provider.handler(EC2_MACHINE)
print(json.dumps([at_start, without_ec2, loaded()]))
"""
    at_start, without_ec2, with_ec2 = json.loads(run_python(code))
    for module, (with_others, with_machine) in HEAVY.items():
        assert module not in at_start
        assert (module in without_ec2) == with_others, module
        assert (module in with_ec2) == with_machine, module
    assert not any(name.startswith("pulumi_wasmcloud.provider.ec2") for name in at_start)
    # nats-py imports aiohttp (WebSocket transport): a stand-in until it is used
    assert without_ec2["aiohttp"] == "DeferredModule"


def test_a_new_multi_region_stacks_preview_imports_only_what_it_uses() -> None:
    """examples/multi-region's prod stack before it exists, as its preview asks the
    plugin (inputs as the engine sends them: every machine's address, the lattice's URLs
    and secrets unknown): each type checked, and previewed but the Ec2Machine (its AMI
    lookup asks EC2). Nothing of NOT_IN_A_NEW_STACKS_PREVIEW is imported on the way."""
    key = KeyPair.generate("preview").private_openssh
    code = """
import asyncio, json, sys
from pulumi_wasmcloud.provider import main
for name in main.DEFERRED_MODULES:
    main.defer_loading(name)
from pulumi_wasmcloud.provider.provider import WasmcloudProvider
from pulumi_wasmcloud.provider.values import UNKNOWN, plain, to_props

key = sys.argv[1]
def machine(name):
    return {"name": name, "host": UNKNOWN, "hostKey": UNKNOWN, "user": "root", "port": 22,
            "privateKey": key, "verifyHostKey": True}
lattice_outputs = dict.fromkeys(("natsUrl", "credentials", "caCert", "clientTls",
                                 "registryUrl"), UNKNOWN)
manifest = {
    "apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
    "metadata": {"name": "counter-eu", "annotations": {"version": "v1"}},
    "spec": {"components": [
        {"name": "counter", "type": "component",
         "properties": {"image": "ghcr.io/wasmcloud/components/counter:0.1.0"},
         "traits": [{"type": "spreadscaler", "properties": {"instances": 1}}]},
        {"name": "kv", "type": "capability", "properties": {"image": "builtin:keyvalue-nats"},
         "traits": [{"type": "daemonscaler", "properties": {"instances": 1}}]},
    ]},
}
previews = [
    ("Ec2Machine", {"region": "us-east-1", "lattice": "default", "role": "core",
                    "subnetId": "subnet-0abc", "privateKey": key, "user": "root",
                    "instanceType": "t3.small", "amiParameter": "/aws/service/debian",
                    "sshFrom": ["198.18.0.0/16"], "latticeCidrs": ["198.18.0.0/16"],
                    "peerCidrs": ["198.18.0.0/16"]}),
    ("Lattice", {"lattice": "default", "cluster": [machine("core-1")], "registryPort": 5000,
                 "leafNodes": [{"region": "eu-west-1", "machine": machine("edge-1")}],
                 "jetstreamDomain": "core", "heartbeatSeconds": 10}),
    ("Host", {"name": "core-1-host", "lattice": "default", "machine": machine("core-1"),
              "labels": {"region": "us-east-1"}, "hostNatsUrl": UNKNOWN, "jsDomain": UNKNOWN,
              "userIssuer": UNKNOWN, "tlsIssuer": UNKNOWN, "heartbeatSeconds": 10,
              **lattice_outputs}),
    ("Application", {"lattice": "default", "manifest": manifest, "healthUrl": UNKNOWN,
                     "healthTimeoutSeconds": 60, **lattice_outputs}),
]
async def preview():
    provider = WasmcloudProvider(None)
    done = {}
    for kind, news in previews:
        handler = provider.handler("wasmcloud:index:" + kind)
        checked = await handler.check({}, news)
        assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
        if kind != "Ec2Machine":
            inputs = plain(to_props(checked.inputs, handler.secrets))  # as the engine sends
            created = await handler.create(inputs, True)
            done[kind] = sorted(k for k, v in created.outputs.items() if v is UNKNOWN)
    return done
unknown = asyncio.run(preview())
print(json.dumps([unknown, sorted(sys.modules)]))
"""
    unknown, loaded = json.loads(run_python(code, key))
    # the previews ran (their outputs as a new stack's: what the up makes is unknown)
    assert "natsUrl" in unknown["Lattice"] and "hostId" in unknown["Host"]
    assert "version" in unknown["Application"]
    assert "pulumi_wasmcloud.provider.machine_lattice" in loaded  # the machines' handlers
    assert "pulumi_wasmcloud.provider.machine_host" in loaded
    imported = [m for m in NOT_IN_A_NEW_STACKS_PREVIEW if m in loaded]
    assert imported == [], "a new stack's preview imported what it never uses"


def test_a_deferred_module_works_as_the_real_one_once_used() -> None:
    code = """
import sys
from pulumi_wasmcloud.provider.main import defer_loading
defer_loading("aiohttp")
import aiohttp
import nats
stand_in = aiohttp
assert type(sys.modules["aiohttp"]).__name__ == "DeferredModule"
timeout = aiohttp.ClientTimeout(total=3)
assert type(sys.modules["aiohttp"]).__name__ == "module"  # the real one took its place
from aiohttp import web
assert stand_in.ClientError is sys.modules["aiohttp"].ClientError
assert issubclass(stand_in.ClientConnectionError, stand_in.ClientError)
print(timeout.total, web.Application.__name__)
"""
    assert run_python(code).split() == ["3", "Application"]


def test_the_plugin_prints_its_port_and_ends_with_status_0_when_interrupted() -> None:
    """As the engine runs it: the port on stdout, SIGINT at the end of the command."""
    plugin = subprocess.Popen(
        [sys.executable, "-m", "pulumi_wasmcloud.provider.main"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A plugin that does not end prints where each thread waits (SIGABRT below).
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    try:
        assert plugin.stdout is not None and plugin.stderr is not None
        port = plugin.stdout.readline().strip()
        assert port.isdigit(), plugin.stderr.read()
        plugin.send_signal(signal.SIGINT)
        try:
            assert plugin.wait(timeout=60) == 0
        except subprocess.TimeoutExpired:
            plugin.send_signal(signal.SIGABRT)
            plugin.wait(timeout=10)
            pytest.fail(f"the plugin did not end on SIGINT:\n{plugin.stderr.read()}")
    finally:
        if plugin.poll() is None:
            plugin.kill()
            plugin.wait()
