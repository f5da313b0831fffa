"""Components through the lattice's OCI registry, with the real Pulumi CLI: the Lattice runs
a real docker-registry, the Application pushes the counter (a local build) there and deploys
it by digest through the controller onto two hosts, which pull it (the second start is a
cache hit in its log); the curl sequence answers. A rebuilt component shows in preview as a
digest change of the image and nothing else, and up moves the instances to it."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from host_agent.lattice.client import CtlClient
from tests.lattice import ROOT
from tests.pulumi_cli import VENV, Stack, e2e_stack
from tests.registry import registry_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COUNTER_WASM = ROOT / "examples" / "counter" / "build" / "counter.wasm"
VENV_BIN = VENV / "bin"

PROGRAM = textwrap.dedent(
    """
    import pulumi
    import yaml
    from pathlib import Path

    import pulumi_wasmcloud as wasmcloud

    config = pulumi.Config()
    root = Path(config.require("root"))
    redis_port = config.require_int("redisPort")
    lattice = wasmcloud.Lattice(
        "lattice",
        nats_port=config.require_int("natsPort"),
        redis_port=redis_port,
        registry_port=config.require_int("registryPort"),
        state_dir=config.require("stateDir"),
        heartbeat_seconds=2,
        secure=False,  # the test reads NATS as anyone; test_local_security.py covers secured
    )
    core = wasmcloud.Host("oci-core", lattice=lattice, labels={"tier": "core"})
    edge = wasmcloud.Host("oci-edge", lattice=lattice, labels={"tier": "edge"})

    manifest = yaml.safe_load((root / "examples" / "counter" / "wadm.yaml").read_text())
    counter, _, http = manifest["spec"]["components"]
    counter["properties"]["image"] = config.require("componentFile")
    tiers = config.require("tiers").split(",")
    counter["traits"][0]["properties"] = {
        "instances": 2,
        "spread": [{"name": t, "requirements": {"tier": t}, "weight": 1} for t in tiers],
    }
    link = counter["traits"][1]["properties"]
    link["target_config"][0]["properties"]["url"] = f"redis://127.0.0.1:{redis_port}"
    address = http["traits"][0]["properties"]["source_config"][0]["properties"]
    address["address"] = f"127.0.0.1:{config.require_int('httpPort')}"
    for provider in manifest["spec"]["components"][1:]:
        provider.setdefault("traits", []).append(
            {"type": "spreadscaler", "properties": {"instances": 1,
             "spread": [{"name": "core", "requirements": {"tier": "core"}}]}}
        )

    app = wasmcloud.Application(
        "counter", lattice=lattice, manifest=manifest,
        opts=pulumi.ResourceOptions(depends_on=[core, edge]),
    )
    pulumi.export("registryUrl", lattice.registry_url)
    pulumi.export("placement", app.placement)
    """
)


def variant(path: Path) -> str:
    """Write the counter with a custom section holding a fresh nonce: a rebuilt component
    (same behaviour, new bytes, so a digest no cache has seen)."""
    nonce = secrets.token_hex(8).encode()
    name = b"build-id"
    body = bytes([len(name)]) + name + nonce
    path.write_bytes(COUNTER_WASM.read_bytes() + b"\x00" + bytes([len(body)]) + body)
    return nonce.decode()


class OciStack(Stack):
    command_timeout = 300

    def __init__(self, workdir: Path) -> None:
        self.component = workdir / "counter.wasm"
        super().__init__(
            workdir,
            "oci",
            program=PROGRAM,
            extra_ports=("registryPort",),
            settings={"componentFile": self.component, "tiers": "core"},
            # The hosts' blob cache, new for this test (hosts inherit the CLI's environment).
            env={"WASMCLOUD_CACHE_DIR": str(workdir / "host-cache")},
        )

    def host_log(self, name: str) -> str:
        return (self.state / f"host-{name}.log").read_text()


@pytest.fixture
def oci_stack(tmp_path: Path) -> Iterator[OciStack]:
    if not registry_available():
        pytest.fail(
            "docker-registry is missing: run scripts/bootstrap.sh (as root, it installs it)"
        )
    if not COUNTER_WASM.exists():
        pytest.fail("the counter is not built: run scripts/bootstrap.sh")
    with e2e_stack(tmp_path, "oci", lambda: OciStack(tmp_path)) as stack:
        assert isinstance(stack, OciStack)
        yield stack


def image_refs(nats_url: str) -> set[str]:
    """The image each running counter instance was started from, on every host."""

    async def ask() -> set[str]:
        nc = await nats.connect(nats_url)
        try:
            ctl = CtlClient(nc, "default")
            refs = set()
            for host in await ctl.ping_hosts(wait=1.0):
                for component in (await ctl.get_inventory(str(host["id"])))["components"]:
                    if component["id"].endswith("counter"):
                        refs.add(str(component["image_ref"]))
            return refs
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_counter_through_the_lattice_registry(oci_stack: OciStack) -> None:
    stack = oci_stack
    variant(stack.component)
    stack.run("up", "--yes", "--skip-preview")
    registry = f"127.0.0.1:{stack.ports['registryPort']}"
    nats_url = f"nats://127.0.0.1:{stack.ports['natsPort']}"
    [first] = image_refs(nats_url)
    assert re.fullmatch(rf"{re.escape(registry)}/counter/counter@sha256:[0-9a-f]{{64}}", first)
    assert f"pulled {first}" in stack.host_log("oci-core")

    # The second host starts the same digest: from the cache the first pull filled.
    stack.run("config", "set", "tiers", "core,edge")
    stack.run("up", "--yes", "--skip-preview")
    assert f"cache hit for {first}" in stack.host_log("oci-edge")
    assert f"pulled {first}" not in stack.host_log("oci-edge")
    assert [stack.get("hello"), stack.get("hello"), stack.get("world")] == [
        "hello -> 1",
        "hello -> 2",
        "world -> 1",
    ]

    # A rebuild: preview shows the image's digest change, and nothing else.
    variant(stack.component)
    preview = stack.run("preview", "--diff").stdout
    changed = re.findall(r"^\s*~ image\s*:\s*\"([^\"]+)\" => \"([^\"]+)\"", preview, re.M)
    assert len(changed) == 1, preview
    old, new = changed[0]
    assert old == first and new.startswith(f"{registry}/counter/counter@sha256:") and new != old
    assert "~ instances" not in preview and "~ address" not in preview

    stack.run("up", "--yes", "--skip-preview")
    assert image_refs(nats_url) == {new}
    assert stack.get("hello") == "hello -> 3"  # same Redis: the count goes on
    assert os.path.getsize(stack.component) > 0


HELLO_WASM = ROOT / "examples" / "hello" / "build" / "hello.wasm"
IMAGE_CHANGE = re.compile(r"^\s*~ image\s*:\s*\"([^\"]+)\" => \"([^\"]+)\"", re.M)
# A changed value in `preview --diff` (`~ name: old => new`), or one added or removed.
VALUE_CHANGE = re.compile(r"^.* => .*$|^\s*[-+] .*$", re.M)


def wasmcloud_push(file: Path, ref: str) -> str:
    """`wasmcloud push FILE REF --insecure`, as a user publishes a build; its digest."""
    done = subprocess.run(
        [str(VENV_BIN / "wasmcloud"), "push", str(file), ref, "--insecure"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), done.stdout
    return digest


def test_a_new_push_under_the_same_tag_is_an_image_change(oci_stack: OciStack) -> None:
    stack = oci_stack
    variant(stack.component)
    stack.run("up", "--yes", "--skip-preview")  # the lattice and its registry
    registry = f"127.0.0.1:{stack.ports['registryPort']}"
    nats_url = f"nats://127.0.0.1:{stack.ports['natsPort']}"
    tag = f"{registry}/shop/counter:1.0"

    first = wasmcloud_push(COUNTER_WASM, tag)
    stack.config("componentFile", tag)
    stack.run("up", "--yes", "--skip-preview")
    assert image_refs(nats_url) == {f"{tag}@{first}"}
    assert stack.count("tagged") == 1

    # A different build under the same tag: preview shows the digest change and nothing
    # else; up moves the instances; curl answers from the new build.
    second = wasmcloud_push(HELLO_WASM, tag)
    assert second != first
    preview = stack.run("preview", "--diff").stdout
    print(preview)
    assert IMAGE_CHANGE.findall(preview) == [(f"{tag}@{first}", f"{tag}@{second}")], preview
    assert len(VALUE_CHANGE.findall(preview)) == 1, preview

    stack.run("up", "--yes", "--skip-preview")
    assert image_refs(nats_url) == {f"{tag}@{second}"}
    assert stack.get("tagged") == "hello from wasmCloud"
    assert stack.run("preview", "--expect-no-changes").returncode == 0
