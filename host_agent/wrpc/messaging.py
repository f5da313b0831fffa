"""wasmcloud:messaging@0.2.0 on the wire (what messaging-nats serves and calls).

    record broker-message { subject: string, body: list<u8>, reply-to: option<string> }
    consumer.request: func(subject: string, body: list<u8>, timeout-ms: u32)
                        -> result<broker-message, string>
    consumer.publish: func(msg: broker-message) -> result<_, string>
    handler.handle-message: func(msg: broker-message) -> result<_, string>

The component's host encodes its side from the component's own types (custom
interfaces, runtime/wrpc_values.py); these are the provider's side, written out.
"""

from __future__ import annotations

from dataclasses import dataclass

from host_agent.wrpc.codec import DecodeError, Reader, Writer

MESSAGING_VERSION = "0.2.0"
CONSUMER_INSTANCE = f"wasmcloud:messaging/consumer@{MESSAGING_VERSION}"
HANDLER_INSTANCE = f"wasmcloud:messaging/handler@{MESSAGING_VERSION}"


@dataclass(frozen=True)
class BrokerMessage:
    subject: str
    body: bytes
    reply_to: str | None = None


def _write_message(writer: Writer, message: BrokerMessage) -> Writer:
    return writer.string(message.subject).list_u8(message.body).option_string(message.reply_to)


def _read_message(reader: Reader) -> BrokerMessage:
    return BrokerMessage(reader.string(), reader.list_u8(), reader.option_string())


def _done(reader: Reader, what: str) -> None:
    if not reader.at_end():
        raise DecodeError(f"{reader.remaining()} bytes after {what}")


def encode_message(message: BrokerMessage) -> bytes:
    """handle-message's and publish's parameter."""
    return _write_message(Writer(), message).finish()


def decode_message(data: bytes) -> BrokerMessage:
    reader = Reader(data)
    message = _read_message(reader)
    _done(reader, "the broker-message")
    return message


def encode_request(subject: str, body: bytes, timeout_ms: int) -> bytes:
    return Writer().string(subject).list_u8(body).u(timeout_ms).finish()


def decode_request(data: bytes) -> tuple[str, bytes, int]:
    """request's parameters: (subject, body, timeout in milliseconds)."""
    reader = Reader(data)
    request = (reader.string(), reader.list_u8(), reader.u(32))
    _done(reader, "the request parameters")
    return request


def encode_unit_result(error: str | None) -> bytes:
    """result<_, string>: None is ok."""
    return Writer().u8(0).finish() if error is None else Writer().u8(1).string(error).finish()


def decode_unit_result(data: bytes) -> str | None:
    reader = Reader(data)
    tag = reader.u8()
    if tag not in (0, 1):
        raise DecodeError(f"result tag {tag}, expected 0 (ok) or 1 (err)")
    error = reader.string() if tag == 1 else None
    _done(reader, "the result")
    return error


def encode_message_result(result: BrokerMessage | str) -> bytes:
    """result<broker-message, string>: a string is the error."""
    if isinstance(result, str):
        return Writer().u8(1).string(result).finish()
    return _write_message(Writer().u8(0), result).finish()


def decode_message_result(data: bytes) -> BrokerMessage | str:
    reader = Reader(data)
    tag = reader.u8()
    if tag == 0:
        result: BrokerMessage | str = _read_message(reader)
    elif tag == 1:
        result = reader.string()
    else:
        raise DecodeError(f"result tag {tag}, expected 0 (ok) or 1 (err)")
    _done(reader, "the result")
    return result
