"""wRPC value encoding: component-model values as LEB128 integers and length-prefixed bytes.

Written by hand because no maintained Python wRPC library exists; the layout follows
the wrpc-transport crate (see docs/architecture.md).
"""

from __future__ import annotations


class DecodeError(ValueError):
    pass


class Writer:
    def __init__(self) -> None:
        self.buffer = bytearray()

    def u(self, value: int) -> Writer:
        """Unsigned LEB128 (u16..u64, lengths, discriminants)."""
        if value < 0:
            raise ValueError("unsigned value is negative")
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                self.buffer.append(byte | 0x80)
            else:
                self.buffer.append(byte)
                return self

    def s(self, value: int) -> Writer:
        """Signed LEB128 (s16..s64)."""
        while True:
            byte = value & 0x7F
            value >>= 7
            done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
            self.buffer.append(byte if done else byte | 0x80)
            if done:
                return self

    def u8(self, value: int) -> Writer:
        self.buffer.append(value & 0xFF)
        return self

    def boolean(self, value: bool) -> Writer:
        return self.u8(1 if value else 0)

    def list_u8(self, value: bytes) -> Writer:
        self.u(len(value))
        self.buffer += value
        return self

    def string(self, value: str) -> Writer:
        return self.list_u8(value.encode())

    def option_string(self, value: str | None) -> Writer:
        if value is None:
            return self.u8(0)
        return self.u8(1).string(value)

    def finish(self) -> bytes:
        return bytes(self.buffer)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def _byte(self) -> int:
        if self.offset >= len(self.data):
            raise DecodeError("unexpected end of wRPC value")
        byte = self.data[self.offset]
        self.offset += 1
        return byte

    def _leb128(self, max_bits: int) -> tuple[int, int, int]:
        """Raw LEB128 groups: (value, bits consumed, last byte), for u() and s() to finish."""
        result = shift = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result, shift, byte
            if shift >= max_bits + 7:
                raise DecodeError("LEB128 integer too long")

    def u(self, max_bits: int = 64) -> int:
        return self._leb128(max_bits)[0]

    def s(self, max_bits: int = 64) -> int:
        result, shift, last = self._leb128(max_bits)
        if last & 0x40:  # sign bit of the last group
            result -= 1 << shift
        return result

    def u8(self) -> int:
        return self._byte()

    def boolean(self) -> bool:
        value = self._byte()
        if value > 1:
            raise DecodeError(f"invalid bool byte {value}")
        return value == 1

    def list_u8(self) -> bytes:
        length = self.u(32)
        end = self.offset + length
        if end > len(self.data):
            raise DecodeError("byte list longer than the message")
        value = bytes(self.data[self.offset : end])
        self.offset = end
        return value

    def string(self) -> str:
        try:
            return self.list_u8().decode()
        except UnicodeDecodeError as error:
            raise DecodeError(f"string is not UTF-8: {error}") from None

    def option_string(self) -> str | None:
        return self.string() if self.option() else None

    def option(self) -> bool:
        flag = self._byte()
        if flag > 1:
            raise DecodeError(f"invalid option discriminant {flag}")
        return flag == 1

    def at_end(self) -> bool:
        return self.offset == len(self.data)

    def rest(self) -> bytes:
        return bytes(self.data[self.offset :])


def stream_frames(data: bytes, chunk: int = 64 * 1024) -> bytes:
    """A `stream<u8>` sent on its own (nested) subject: length-prefixed chunks, then 0."""
    writer = Writer()
    for start in range(0, len(data), chunk):
        writer.list_u8(data[start : start + chunk])
    return writer.u8(0).finish()


def read_stream_frames(data: bytes) -> bytes:
    """Inverse of `stream_frames`: the chunks up to the zero-length end marker."""
    reader = Reader(data)
    out = bytearray()
    while not reader.at_end():
        piece = reader.list_u8()
        if not piece:
            break
        out += piece
    return bytes(out)
