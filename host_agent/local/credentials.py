"""Where a local lattice leaves the credentials its tools use, and how tools find them.

A secured local lattice (``make up``'s Lattice, or ``wasmcloud up``) writes the tooling
user's ``.creds`` as ``nats.creds`` (and, with TLS, the CA as ``ca.pem``) in its state
folder, 0600. Tools look in the folder ``WASMCLOUD_STATE_DIR`` names, else in the default
``.state/local`` of the directory they run in, so the ``wasmcloud`` CLI, the README's
examples and (through ``wasmcloud env``) wash and the nats CLI connect without flags.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
        """What wash, the nats CLI and this project's commands read, by their own names."""
        env = {
            "WASH_CTL_CREDS": str(self.creds_file),  # wash --ctl-credsfile
            "NATS_CREDS": str(self.creds_file),  # the nats CLI
            "WASMCLOUD_NATS_CREDS": str(self.creds_file),  # wasmcloud-host
            "WADM_NATS_CREDS_FILE": str(self.creds_file),  # wasmcloud-controller
        }
        if self.ca_file is not None:
            env |= {
                "WASH_CTL_TLS_CA_FILE": str(self.ca_file),  # wash --ctl-tls-ca-file
                "NATS_CA": str(self.ca_file),
                "WASMCLOUD_TLS_CA_PATH": str(self.ca_file),
            }
        return env

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


def find_local_credentials(folder: Path) -> LocalCredentials | None:
    """The credentials a secured local lattice left in ``folder``; None for a plain one."""
    creds = folder / CREDS_FILE
    if not creds.is_file():
        return None
    ca = folder / CA_FILE
    return LocalCredentials(creds.resolve(), ca.resolve() if ca.is_file() else None)
