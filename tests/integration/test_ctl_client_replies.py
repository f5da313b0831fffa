"""CtlClient reads control replies strictly: a malformed envelope is an error naming the
field (``"success": "true"`` was read as success), and one malformed ping reply does not
hide the hosts that answered properly. The "hosts" here are plain NATS responders on a real
nats-server: no real host sends such replies, which is the point."""

from __future__ import annotations

import json
from typing import Any

import nats
import pytest

from host_agent.lattice.client import CtlClient, CtlError
from pulumi_wasmcloud.provider.live import connect
from tests.lattice import NatsServer, run_async


async def answer(nc: Any, subject: str, *replies: object) -> None:
    """Answer each request on ``subject`` with every one of ``replies`` (in order)."""

    async def reply(msg: Any) -> None:
        for body in replies:
            await nc.publish(msg.reply, json.dumps(body).encode())

    await nc.subscribe(subject, cb=reply)
    await nc.flush()


@run_async
async def test_a_malformed_control_reply_is_an_error_naming_the_field(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        ctl = CtlClient(nc)
        cases = {
            "NSTRING": ({"success": "true", "response": {}}, "success: expected true or false"),
            "NMESSAGE": ({"success": False, "message": 5}, "message: expected a string"),
            "NMISSING": ({"response": {}}, "success: required but missing"),
            "NLIST": (
                [],
                "invalid reply to wasmbus.ctl.v1.default.host.get.NLIST: expected a JSON object",
            ),
        }
        for host_id, (reply, said) in cases.items():
            await answer(nc, ctl.subjects.host_get(host_id), reply)
            with pytest.raises(CtlError, match=said):
                await ctl.get_inventory(host_id)
        await answer(nc, ctl.subjects.host_get("NFAIL"), {"success": False, "message": "no"})
        with pytest.raises(CtlError, match=r"^no$"):
            await ctl.get_inventory("NFAIL")
    finally:
        await nc.close()


@run_async
async def test_a_malformed_ping_reply_does_not_hide_the_other_hosts(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        ctl = CtlClient(nc)
        await answer(
            nc,
            ctl.subjects.host_ping(),
            {"success": True, "response": {"friendly_name": "no id"}},
            {"success": "yes", "response": {"id": "NBADENVELOPE"}},
            {"success": True, "response": {"id": "NGOOD", "labels": {}}},
        )
        hosts = await ctl.ping_hosts(wait=1.0)
        assert [host["id"] for host in hosts] == ["NGOOD"]
    finally:
        await nc.close()


@run_async
async def test_the_provider_plans_without_a_host_whose_inventory_is_malformed(
    nats_server: NatsServer,
) -> None:
    """A host whose inventory cannot be read is left out of the provider's view (as the
    controller leaves it out), instead of failing every preview of the lattice."""
    nc = await nats.connect(nats_server.url)
    try:
        ctl = CtlClient(nc)
        await answer(
            nc,
            ctl.subjects.host_ping(),
            {"success": True, "response": {"id": "NGOOD", "friendly_name": "good"}},
            {"success": True, "response": {"id": "NBAD", "friendly_name": "bad"}},
        )
        good = {"host_id": "NGOOD", "labels": {"zone": "a"}, "components": [], "providers": []}
        bad = {"host_id": "NBAD", "labels": {}, "components": [{"max_instances": "5"}]}
        await answer(nc, ctl.subjects.host_get("NGOOD"), {"success": True, "response": good})
        await answer(nc, ctl.subjects.host_get("NBAD"), {"success": True, "response": bad})
        async with connect(nats_server.url, "default") as lattice:
            view = await lattice.view(fresh=True)
        assert view.names() == {"NGOOD": "good"}
    finally:
        await nc.close()
