"""A broker message handed to a component's `wasmcloud:messaging/handler`: what the
messaging providers (NATS, Kafka) share once they have a message and the component it is for."""

from __future__ import annotations

from host_agent.wrpc import messaging as wire
from host_agent.wrpc.codec import DecodeError
from host_agent.wrpc.transport import NoResponders, Payload, WrpcClient, WrpcError

HANDLER_TIMEOUT = 10.0  # one handle-message call


async def deliver(
    client: WrpcClient,
    component: str,
    message: wire.BrokerMessage,
    provider_id: str,
    link_name: str,
) -> str | None:
    """Call ``component``'s handle-message with ``message``; None when it took it, else
    why not, as a sentence for the provider's log."""
    try:
        reply = await client.invoke(
            component,
            wire.HANDLER_INSTANCE,
            "handle-message",
            Payload(wire.encode_message(message)),
            source_id=provider_id,
            link_name=link_name,
            timeout=HANDLER_TIMEOUT,
        )
        return wire.decode_unit_result(reply.data)
    except NoResponders:
        return f"component {component} is not running"
    except TimeoutError:
        return f"component {component} did not answer within {HANDLER_TIMEOUT:g} s"
    except (WrpcError, DecodeError) as failure:
        return f"component {component} failed: {failure}"
