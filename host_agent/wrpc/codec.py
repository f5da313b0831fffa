"""wRPC value encoding: component-model values as LEB128 integers and length-prefixed bytes.

Written by hand because no maintained Python wRPC library exists; the layout follows
the wrpc-transport crate (see docs/architecture.md). Integers follow leb128-tokio, which
wrpc uses: at most ceil(bits/7) bytes, and the last byte may carry no bits beyond the width
(padding inside that length is accepted, as upstream does). Reference bytes printed by the
real crates are in tests/unit/wrpc_vectors.json.
"""

from __future__ import annotations

import struct


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

    def s8(self, value: int) -> Writer:
        """s8 is one two's-complement byte (not LEB128), as wrpc writes it."""
        self.buffer.append(value & 0xFF)
        return self

    def f32(self, value: float) -> Writer:
        self.buffer += struct.pack("<f", value)
        return self

    def f64(self, value: float) -> Writer:
        self.buffer += struct.pack("<d", value)
        return self

    def char(self, value: str) -> Writer:
        """A char is its UTF-8 bytes, with no length (wasm-tokio's Utf8Codec)."""
        self.buffer += value.encode()
        return self

    def raw(self, value: bytes) -> Writer:
        self.buffer += value
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

    def _leb128(self, bits: int) -> tuple[int, int]:
        """Raw LEB128 groups of an integer `bits` wide: (value, bits consumed)."""
        result = shift = 0
        for _ in range(-(-bits // 7)):
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result, shift
        raise DecodeError(f"LEB128 integer longer than {-(-bits // 7)} bytes for {bits} bits")

    def u(self, max_bits: int = 64) -> int:
        """Unsigned LEB128 of an integer `max_bits` wide; larger values are refused."""
        offset = self.offset
        if offset < len(self.data) and max_bits >= 7:
            byte = self.data[offset]
            if byte < 0x80:  # one byte, the common case (lengths, discriminants): fast
                self.offset = offset + 1
                return byte
        value, _ = self._leb128(max_bits)
        if value >> max_bits:
            raise DecodeError(f"LEB128 integer does not fit in {max_bits} bits")
        return value

    def s(self, max_bits: int = 64) -> int:
        """Signed LEB128 of an integer `max_bits` wide; out-of-range values are refused."""
        value, shift = self._leb128(max_bits)
        if value >> (shift - 1):  # sign bit of the last group
            value -= 1 << shift
        if not -(1 << (max_bits - 1)) <= value < 1 << (max_bits - 1):
            raise DecodeError(f"signed LEB128 integer does not fit in {max_bits} bits")
        return value

    def fixed(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise DecodeError("unexpected end of wRPC value")
        value = bytes(self.data[self.offset : end])
        self.offset = end
        return value

    def s8(self) -> int:
        byte = self._byte()
        return byte - 256 if byte & 0x80 else byte

    def f32(self) -> float:
        return float(struct.unpack("<f", self.fixed(4))[0])

    def f64(self) -> float:
        return float(struct.unpack("<d", self.fixed(8))[0])

    def char(self) -> str:
        """One UTF-8 encoded scalar value; its first byte gives its length."""
        first = self._byte()
        size = 1 if first < 0x80 else 2 if first >> 5 == 0b110 else 3 if first >> 4 == 0b1110 else 4
        if first >= 0x80 and (first >> 6 == 0b10 or first >= 0xF8):
            raise DecodeError(f"char is not UTF-8: invalid first byte 0x{first:02x}")
        encoded = bytes([first]) + self.fixed(size - 1)
        try:
            return encoded.decode()
        except UnicodeDecodeError:
            raise DecodeError(f"char is not UTF-8: bytes {encoded.hex()}") from None

    def u8(self) -> int:
        return self._byte()

    def boolean(self) -> bool:
        value = self._byte()
        if value > 1:
            raise DecodeError(f"invalid bool byte {value}")
        return value == 1

    def list_u8(self) -> bytes:
        length = self.u(32)
        if self.offset + length > len(self.data):
            raise DecodeError(f"byte list of {length} bytes is longer than the message")
        return self.fixed(length)

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def string(self) -> str:
        try:
            return self.list_u8().decode()
        except UnicodeDecodeError as error:
            reason = f"{error.reason} at byte {error.start}"
            raise DecodeError(f"string is not UTF-8 ({reason})") from None

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
