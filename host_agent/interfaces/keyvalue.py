"""wasi:keyvalue's version and error value, shared by the runtime (guest side), the wRPC
codec and the keyvalue providers."""

from __future__ import annotations

# wasmCloud 1.x keyvalue providers serve this draft; components built against another
# draft (the tutorial's draft vs draft2 pitfall) are refused at scale and link time.
KEYVALUE_VERSION = "0.2.0-draft"

# The cases of wasi:keyvalue/store's `error` variant; only `other` carries a message.
KEYVALUE_ERROR_KINDS = ("no-such-store", "access-denied", "other")


class KeyValueError(Exception):
    """A wasi:keyvalue `error` value: no-such-store, access-denied or other(message)."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message
