"""Host identity: a server-type nkey (public key ``N...``) and a friendly name.

The seed is the host's secret: it never appears in a repr (logs, tracebacks, test output).
"""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass, field

import nkeys

_ADJECTIVES = (
    "quiet",
    "purple",
    "brave",
    "misty",
    "amber",
    "swift",
    "silent",
    "golden",
    "icy",
    "lively",
    "mellow",
    "rusty",
    "sunny",
    "wild",
    "young",
    "bold",
)
_NOUNS = (
    "water",
    "forest",
    "river",
    "cloud",
    "meadow",
    "stone",
    "breeze",
    "harbor",
    "field",
    "lake",
    "canyon",
    "ember",
    "glade",
    "ridge",
    "tide",
    "pine",
)


class IdentityError(ValueError):
    pass


@dataclass(frozen=True)
class HostIdentity:
    public_key: str
    seed: str = field(repr=False)
    friendly_name: str

    @classmethod
    def generate(cls, friendly_name: str | None = None) -> HostIdentity:
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER).decode()
        return cls.from_seed(seed, friendly_name)

    @classmethod
    def from_seed(cls, seed: str, friendly_name: str | None = None) -> HostIdentity:
        if not seed.startswith("SN"):
            raise IdentityError(
                "host seed must be a server nkey seed starting with 'SN' "
                "(set WASMCLOUD_HOST_SEED, or leave it out to generate one)"
            )
        try:
            keypair = nkeys.from_seed(bytearray(seed.encode()))
        except Exception as exc:  # nkeys raises several unrelated error types
            raise IdentityError(f"host seed is not a valid nkey seed: {exc}") from None
        public_key = keypair.public_key.decode()
        return cls(public_key, seed, friendly_name or _friendly_name(public_key))


def _friendly_name(public_key: str) -> str:
    # Derived from the key so a host keeps its name across restarts with the same seed.
    rng = random.Random(public_key)
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randrange(10000):04d}"


def default_labels() -> dict[str, str]:
    """The labels every wasmCloud host carries, spelled as Rust's std::env::consts."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    os_name = {"darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    return {
        "hostcore.arch": arch,
        "hostcore.os": os_name,
        "hostcore.osfamily": "windows" if os_name == "windows" else "unix",
    }
