"""Where a local lattice leaves the credentials its tools use, and how tools find them.

A secured local lattice (``make up``'s Lattice, or ``wasmcloud up``) writes the tooling
user's ``.creds`` as ``nats.creds`` (and, with TLS, the CA as ``ca.pem``) in its state
folder, 0600. Tools look in the folder ``WASMCLOUD_STATE_DIR`` names, else in the default
``.state/local`` of the directory they run in: the README's examples
(``local_nats_options``) and, through ``eval "$(wasmcloud env)"``, wash and the nats CLI
connect without further flags.
"""

from __future__ import annotations

import os
import shlex
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CREDS_FILE = "nats.creds"
CA_FILE = "ca.pem"
STATE_DIR_VARIABLE = "WASMCLOUD_STATE_DIR"
DEFAULT_STATE_DIR = Path(".state/local")


@dataclass(frozen=True)
class LocalCredentials:
    """The files a tool connects with: the tooling user's creds, and the CA if TLS is on."""

    creds_file: Path
    ca_file: Path | None = None

    def creds(self) -> str:
        return self.creds_file.read_text()

    def environment(self) -> dict[str, str]:
        """What wash and the nats CLI read, by their own names. Not the host's or the
        controller's variables: the tooling user may not act as either."""
        env = {
            "WASH_CTL_CREDS": str(self.creds_file),  # wash --ctl-credsfile
            "NATS_CREDS": str(self.creds_file),  # the nats CLI --creds
        }
        if self.ca_file is not None:
            env |= {
                "WASH_CTL_TLS_CA_FILE": str(self.ca_file),  # wash --ctl-tls-ca-file
                "NATS_CA": str(self.ca_file),  # the nats CLI --tlsca
            }
        return env

    def nats_options(self) -> dict[str, Any]:
        """``nats.connect`` keyword arguments that connect as this user (and trust the CA)."""
        options: dict[str, Any] = {"user_credentials": str(self.creds_file)}
        if self.ca_file is not None:
            options["tls"] = ssl.create_default_context(cafile=str(self.ca_file))
        return options

    def shell_exports(self) -> str:
        return "".join(
            f"export {key}={shlex.quote(value)}\n" for key, value in self.environment().items()
        )


def state_dir(given: str | Path | None, env: Mapping[str, str]) -> Path:
    """The local lattice's state folder: ``given``, else ``$WASMCLOUD_STATE_DIR``, else
    ``.state/local`` (``make up``'s)."""
    if given:
        return Path(given)
    return Path(env.get(STATE_DIR_VARIABLE) or DEFAULT_STATE_DIR)


def local_nats_options(
    folder: str | Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``nats.connect`` keyword arguments for the local lattice: its tooling user and CA
    when it is secured, nothing for a plain one. The README's examples use it:
    ``await nats.connect("nats://127.0.0.1:4222", **local_nats_options())``."""
    found = find_local_credentials(state_dir(folder, os.environ if env is None else env))
    return found.nats_options() if found is not None else {}


def find_local_credentials(folder: Path) -> LocalCredentials | None:
    """The credentials a secured local lattice left in ``folder``; None for a plain one."""
    creds = folder / CREDS_FILE
    if not creds.is_file():
        return None
    ca = folder / CA_FILE
    return LocalCredentials(creds.resolve(), ca.resolve() if ca.is_file() else None)
