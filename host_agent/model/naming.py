"""Names wadm derives for lattice objects, so we can predict ids before deploying."""

from __future__ import annotations

import re

# wadm's "newest version" keyword is part of its API; defined once, with the wire shapes.
from host_agent.lattice.wadm_types import LATEST_VERSION as LATEST_VERSION

# wadm refuses application names outside this pattern (validation.rs, MANIFEST_NAME_REGEX).
MANIFEST_NAME_PATTERN = re.compile(r"^[-\w]+$")


def normalize_name(name: str) -> str:
    """Lower-case and replace every non-ASCII-alphanumeric character with ``_`` (wadm's rule)."""
    return "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in name.lower())


# A config name starting with this names a secret, not config (wadm 0.20's secret configs,
# SECRET_<app>-<secret>, and the host's rule that reads them).
SECRET_PREFIX = "SECRET"


def is_secret_reference(config_name: str) -> bool:
    """The host's rule (1.4.2): a config name starting with ``SECRET`` names a secret."""
    return config_name.startswith(SECRET_PREFIX)


def config_name(manifest_name: str, config: str) -> str:
    """Name of a config wadm creates from a ``properties`` block."""
    return f"{normalize_name(manifest_name)}-{normalize_name(config)}"


def is_valid_label_name(name: str) -> bool:
    """Kubernetes-style label name: 1-63 chars, alnum at both ends, ``[A-Za-z0-9_.-]``."""
    return (
        0 < len(name) <= 63
        and _is_ascii_alnum(name[0])
        and _is_ascii_alnum(name[-1])
        and all(_is_ascii_alnum(ch) or ch in "-_." for ch in name)
    )


def is_valid_dns_subdomain(prefix: str) -> bool:
    if not 0 < len(prefix) <= 253:
        return False
    return all(
        0 < len(part) <= 63
        and part[0].isascii()
        and part[0].isalpha()
        and _is_ascii_alnum(part[-1])
        and all(_is_ascii_alnum(ch) or ch == "-" for ch in part)
        for part in prefix.split(".")
    )


def is_valid_label_key(key: str) -> bool:
    """A label or annotation key: optional DNS-subdomain prefix, ``/``, label name."""
    prefix, slash, name = key.partition("/")
    if not slash:
        return is_valid_label_name(key)
    return is_valid_dns_subdomain(prefix) and is_valid_label_name(name)


def _is_ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()
