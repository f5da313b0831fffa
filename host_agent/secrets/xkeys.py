"""NATS curve keys ("xkeys") and their sealed boxes, compatible with the nkeys crate.

The nkeys package (0.2.1) has no curve keys, so this module encodes them itself: a
public key is ``X`` + base32(prefix, 32 key bytes, crc16) and a seed ``SX...``, as the
Go and Rust nkeys libraries write them; the box is PyNaCl's crypto_box (X25519,
XSalsa20-Poly1305), framed as ``b"xkv1" + 24-byte nonce + ciphertext``. PyNaCl is
already a pinned dependency (claims verification) and is the libsodium binding.
"""

from __future__ import annotations

import base64
import binascii

import nacl.exceptions
import nacl.public
import nacl.utils
from nkeys import crc16_checksum

_PREFIX_CURVE = 23 << 3  # 'X'
_PREFIX_SEED = 18 << 3  # 'S'
_VERSION = b"xkv1"
_NONCE_LEN = 24
_KEY_LEN = 32


class XKeyError(ValueError):
    """A key or sealed message that cannot be used; the message names which and why."""


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw + bytes(crc16_checksum(raw))).decode().rstrip("=")


def _unb32(text: str, what: str) -> bytes:
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise XKeyError(f"{what} is not an nkey (bad base32)") from None
    if len(raw) < 3 or bytes(crc16_checksum(raw[:-2])) != raw[-2:]:
        raise XKeyError(f"{what} is not an nkey (bad checksum)")
    return raw[:-2]


class XKey:
    """A curve key pair, or only its public half. The seed never appears in a repr."""

    __slots__ = ("_private", "_public")

    def __init__(
        self, public: nacl.public.PublicKey, private: nacl.public.PrivateKey | None
    ) -> None:
        self._public = public
        self._private = private

    @classmethod
    def generate(cls) -> XKey:
        private = nacl.public.PrivateKey.generate()
        return cls(private.public_key, private)

    @classmethod
    def from_seed(cls, seed: str, what: str = "xkey seed") -> XKey:
        raw = _unb32(seed.strip(), what)
        first, second = raw[0] & 0xF8, ((raw[0] & 0x07) << 5) | ((raw[1] & 0xF8) >> 3)
        if first != _PREFIX_SEED or second != _PREFIX_CURVE or len(raw) != 2 + _KEY_LEN:
            raise XKeyError(f"{what} is not a curve key seed (expected one starting with SX)")
        private = nacl.public.PrivateKey(raw[2:])
        return cls(private.public_key, private)

    @classmethod
    def from_public_key(cls, public: str, what: str = "xkey") -> XKey:
        raw = _unb32(public.strip(), what)
        if raw[0] != _PREFIX_CURVE or len(raw) != 1 + _KEY_LEN:
            raise XKeyError(f"{what} is not a curve public key (expected one starting with X)")
        return cls(nacl.public.PublicKey(raw[1:]), None)

    @property
    def public_key(self) -> str:
        return _b32(bytes([_PREFIX_CURVE]) + bytes(self._public))

    @property
    def seed(self) -> str:
        if self._private is None:
            raise XKeyError("this xkey has only a public key; it cannot seal or open")
        header = bytes([_PREFIX_SEED | _PREFIX_CURVE >> 5, (_PREFIX_CURVE & 31) << 3])
        return _b32(header + bytes(self._private))

    def seal(self, message: bytes, recipient: XKey) -> bytes:
        """``message`` encrypted so only ``recipient`` can read it, authenticated as us."""
        box = nacl.public.Box(self._need_private(), recipient._public)
        nonce = nacl.utils.random(_NONCE_LEN)
        return _VERSION + nonce + box.encrypt(message, nonce).ciphertext

    def open(self, sealed: bytes, sender: XKey) -> bytes:
        """The message ``sender`` sealed for us; XKeyError if it was not, or was altered."""
        if len(sealed) < len(_VERSION) + _NONCE_LEN or not sealed.startswith(_VERSION):
            raise XKeyError("sealed message is not an xkv1 box")
        nonce = sealed[len(_VERSION) : len(_VERSION) + _NONCE_LEN]
        box = nacl.public.Box(self._need_private(), sender._public)
        try:
            return box.decrypt(sealed[len(_VERSION) + _NONCE_LEN :], nonce)
        except nacl.exceptions.CryptoError:
            raise XKeyError("sealed message does not open with these keys") from None

    def _need_private(self) -> nacl.public.PrivateKey:
        if self._private is None:
            raise XKeyError("this xkey has only a public key; it cannot seal or open")
        return self._private

    def __repr__(self) -> str:
        return f"XKey({self.public_key})"
