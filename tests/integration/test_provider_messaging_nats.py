"""messaging-nats end to end: a wadm manifest deployed through the controller on a local
lattice (real nats-server, host and controller processes) runs examples/messaging, whose
messages come from and go to a second real nats-server (the application's broker)
through the built-in messaging-nats provider: subscriptions from the link's
source_config, request/reply, requests the component makes, the broker going down and
coming back, and a link with bad config."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import yaml
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from host_agent.lattice.wadm import WadmClient
from host_agent.lattice.wadm_types import StatusType
from host_agent.providers.contract import HEALTH, provider_subject
from host_agent.security.permissions import Role
from host_agent.wrpc import messaging as wire
from host_agent.wrpc.transport import Payload, WrpcClient
from tests.integration import test_link_authorization
from tests.integration.test_controller import clients, wait_status
from tests.integration.test_link_authorization import LATTICE, connected
from tests.lattice import ROOT, VENV_BIN, NatsServer, Processes, run_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# The operator-mode lattice with link grants (host and controller processes), shared.
secured = test_link_authorization.secured

EXAMPLE = ROOT / "examples" / "messaging"
WASM = EXAMPLE / "build" / "messaging.wasm"
APP = "chat"
PROVIDER_ID = f"{APP}-broker"  # wadm's id for the provider: <app>-<name>
COMPONENT_ID = f"{APP}-greeter"
BROKER_MAX_PAYLOAD = 4096


def manifest(broker: str, version: str, bad_subscriptions: str | None = None) -> dict[str, Any]:
    """examples/messaging/wadm.yaml on this test's broker; with `bad_subscriptions`, a
    second handler link (named `broken`) subscribing those."""
    data: dict[str, Any] = yaml.safe_load((EXAMPLE / "wadm.yaml").read_text())
    data["metadata"]["annotations"]["version"] = version
    greeter, provider = data["spec"]["components"]
    greeter["properties"]["image"] = f"file://{WASM}"
    greeter["traits"][1]["properties"]["target"]["config"][0]["properties"]["cluster_uris"] = broker
    handler = provider["traits"][0]
    handler["properties"]["source"]["config"][0]["properties"]["cluster_uris"] = broker
    if bad_subscriptions is not None:
        broken = copy.deepcopy(handler)
        broken["properties"]["name"] = "broken"
        config = {"subscriptions": bad_subscriptions, "cluster_uris": broker}
        broken["properties"]["source"]["config"] = [{"name": "broken", "properties": config}]
        provider["traits"].append(broken)
    return data


async def ask(nc: NatsClient, subject: str, body: bytes, within: float = 30.0) -> bytes:
    """Request until the component answers: its subscriptions arrive with the link, after
    the deploy is reported; a broker that just came back needs its resubscription."""
    last: object = None
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            return (await nc.request(subject, body, timeout=2)).data
        except nats.errors.NoRespondersError as error:
            last = error
            await asyncio.sleep(0.1)  # nobody subscribed yet: nothing to wait on but time
        except nats.errors.TimeoutError as error:  # subscribed, the answer did not come
            last = error
    raise AssertionError(f"{subject} was not answered within {within:g} s: {last!r}")


async def publish_as_component(wrpc: WrpcClient, subject: str, body: bytes = b"x") -> str | None:
    """What the component's consumer.publish gets back (its host's call, made here)."""
    reply = await wrpc.invoke(
        PROVIDER_ID,
        wire.CONSUMER_INSTANCE,
        "publish",
        Payload(wire.encode_message(wire.BrokerMessage(subject, body))),
        source_id=COMPONENT_ID,
    )
    return wire.decode_unit_result(reply.data)


@run_async
async def test_a_component_handles_and_sends_messages_through_messaging_nats(
    nats_server: NatsServer, processes: Processes, tmp_path: Path
) -> None:
    # The application's broker takes messages up to BROKER_MAX_PAYLOAD bytes.
    config = tmp_path / "broker.conf"
    config.write_text(f"max_payload: {BROKER_MAX_PAYLOAD}\n")
    broker = NatsServer(tmp_path / "broker", args=("-c", str(config))).start()
    host = processes.host()
    processes.controller()
    try:
        async with clients(nats_server) as (wadm, _):
            await wadm.put(yaml.safe_dump(manifest(broker.url, "v1")))
            await wadm.deploy(APP)
            await wait_status(wadm, APP, StatusType.DEPLOYED, timeout=120)
            app = await nats.connect(broker.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
            try:
                await check_messages(app)
                await check_broker_restart(broker, app, wadm.nc)
                assert host.proc.poll() is None
                await check_bad_link_config(wadm, broker.url)
                await check_version_mismatch(wadm, broker.url, tmp_path)
            finally:
                await app.close()
    finally:
        broker.stop()


async def check_messages(app: NatsClient) -> None:
    # request/reply: a subscribed subject's message is answered by the component.
    assert await ask(app, "greet", b"world") == b"hello, world"
    # A plain publish: the component's answer is published on `greeted`.
    greeted = await app.subscribe("greeted", max_msgs=1)
    await app.publish("greet", b"plain")
    assert (await greeted.next_msg(timeout=10)).data == b"hello, plain"

    # The component's own request (consumer.request) to a service on the broker.
    async def backend(msg: Msg) -> None:
        await msg.respond(b"backend says: " + msg.data)

    service = await app.subscribe("backend", cb=backend)
    await app.flush()
    assert await ask(app, "ask.backend", b"hi") == b"backend says: hi"
    await service.unsubscribe()
    assert await ask(app, "ask.nobody", b"hi") == b"error: no responders on 'nobody'"
    # A subject the link does not subscribe never reaches the component.
    with pytest.raises(nats.errors.NoRespondersError):
        await app.request("elsewhere", b"x", timeout=1)


async def check_broker_restart(broker: NatsServer, app: NatsClient, lattice: NatsClient) -> None:
    wrpc = WrpcClient(lattice, "default")
    assert await publish_as_component(wrpc, "greeted") is None
    # A message over the broker's max_payload is an error to the component, naming why.
    oversize = await publish_as_component(wrpc, "greeted", b"o" * (BROKER_MAX_PAYLOAD + 1))
    assert oversize == "publish to 'greeted' failed: nats: maximum payload exceeded", oversize
    broker.stop()
    # While the broker is down, the component's publish is an error naming the server.
    down = None
    for _ in range(100):
        down = await publish_as_component(wrpc, "greeted")
        if down is not None:
            break
        await asyncio.sleep(0.1)  # the provider's client has not noticed the close yet
    assert down == f"the NATS server at {broker.url} is unreachable (retrying)", down
    broker.start()  # same port and store
    # The provider reconnects and resubscribes; request/reply works again.
    assert await ask(app, "greet", b"again") == b"hello, again"
    assert await publish_as_component(wrpc, "greeted") is None


async def check_bad_link_config(wadm: Any, broker: str) -> None:
    await wadm.put(yaml.safe_dump(manifest(broker, "v2", "orders pending")))
    await wadm.deploy(APP, "v2")
    subject = provider_subject("default", PROVIDER_ID, HEALTH)
    message = ""
    for _ in range(100):
        reply = json.loads((await wadm.nc.request(subject, b"{}", timeout=3)).data)
        if not reply["healthy"]:
            message = reply["message"]
            break
        await asyncio.sleep(0.1)  # the v2 link has not reached the provider yet
    assert "subscriptions='orders pending'" in message, message
    assert 'e.g. "orders.*,jobs|workers"' in message, message


@run_async
async def test_messaging_works_under_per_link_authorization(
    secured: dict[str, Any], tmp_path: Path
) -> None:
    """The same example on an operator-mode lattice with link grants (the local default's
    security): the provider's handle-message calls go out on its link grant, the
    component's consumer calls on its host's."""
    server, issuer = secured["server"], secured["issuer"]
    broker = NatsServer(tmp_path / "broker").start()
    try:
        async with connected(server, issuer.issue(Role.TOOLING, "tooling", LATTICE)) as tooling:
            wadm = WadmClient(tooling, LATTICE, timeout=10)
            for _ in range(300):  # the controller process is still starting
                try:
                    await wadm.list()
                    break
                except nats.errors.NoRespondersError:
                    await asyncio.sleep(0.1)
            await wadm.put(yaml.safe_dump(manifest(broker.url, "v1")))
            await wadm.deploy(APP)
            await wait_status(wadm, APP, StatusType.DEPLOYED, timeout=120)
            app = await nats.connect(broker.url)
            try:
                assert await ask(app, "greet", b"secured") == b"hello, secured"
            finally:
                await app.close()
    finally:
        broker.stop()


# A component built against a wasmcloud:messaging this lattice's providers do not serve:
# it imports consumer@0.3.0 and nothing else. The link to the provider is refused, naming
# both versions.
OTHER_VERSION_WAT = b"""(component
  (import "wasmcloud:messaging/consumer@0.3.0" (instance))
)"""


async def check_version_mismatch(wadm: Any, broker: str, tmp_path: Path) -> None:
    wasm = tmp_path / "other-version.wasm"
    built = subprocess.run(
        [str(VENV_BIN / "wasm-tools"), "parse", "-", "-o", str(wasm)],
        input=OTHER_VERSION_WAT,
        check=True,
    )
    assert built.returncode == 0
    data = manifest(broker, "v1")
    data["metadata"]["name"] = "old-chat"
    greeter, provider = data["spec"]["components"]
    greeter["properties"]["image"] = f"file://{wasm}"
    provider["traits"] = []  # it exports no handler to deliver to
    consumer_link = greeter["traits"].pop(1)
    # First running without the link, so the host knows the image when the link comes.
    await wadm.put(yaml.safe_dump(data))
    await wadm.deploy("old-chat")
    await wait_status(wadm, "old-chat", StatusType.DEPLOYED)
    greeter["traits"].append(consumer_link)
    data["metadata"]["annotations"]["version"] = "v2"
    await wadm.put(yaml.safe_dump(data))
    await wadm.deploy("old-chat", "v2")
    await wait_status(
        wadm,
        "old-chat",
        StatusType.FAILED,
        contains=(
            "(messaging-nats) serves wasmcloud:messaging/consumer@0.2.0; rebuild "
            "old_chat-greeter against wasmcloud:messaging/consumer@0.2.0"
        ),
    )
