"""What an SshTarget refuses before any connection: no way to check the host key, and
keys that are not keys, each named with its machine. Connections to real sshd are in
tests/integration/test_provision_ssh.py."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from pulumi_wasmcloud.provision.connector import SshTarget
from tests.machines import KeyPair

CLIENT = KeyPair.generate()
HOST = KeyPair.generate()


def target(**fields: Any) -> SshTarget:
    values: dict[str, Any] = {
        "name": "core-1",
        "host": "198.18.0.2",
        "private_key": CLIENT.private_openssh,
        "known_host_key": HOST.public_line,
        **fields,
    }
    return SshTarget(**values)


def test_a_target_with_its_known_host_key_or_an_explicit_opt_out_is_accepted() -> None:
    assert target().verify_host_key
    assert not target(known_host_key=None, verify_host_key=False).verify_host_key


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"known_host_key": None}, "known_host_key of core-1: give the machine's host key"),
        ({"known_host_key": "AAAAC3NzaC1lZDI1NTE5"}, "known_host_key of core-1: expected"),
        ({"known_host_key": "ssh-ed25519 !!notbase64"}, "known_host_key of core-1: not a valid"),
        ({"private_key": "not a key"}, "private_key for core-1: not an unencrypted"),
        ({"private_key": HOST.public_line}, "private_key for core-1"),
        ({"port": 0}, "port of core-1"),
        ({"attempts": 0}, "attempts of core-1"),
        ({"connect_timeout": 0}, "connect_timeout of core-1"),
        ({"name": ""}, "name"),
    ],
)
def test_a_target_that_cannot_be_verified_or_logged_into_is_refused(
    fields: dict[str, Any], said: str
) -> None:
    with pytest.raises(ValueError) as refused:
        target(**fields)
    assert said in str(refused.value)


def test_provisioning_imports_neither_pulumi_nor_host_agent() -> None:
    """The provider calls it as plain Python; a machine-side tool could too."""
    modules = [
        "changes", "connector", "facts", "nats_config", "operations", "service", "secret_files",
        "agent", "topology",
    ]  # fmt: skip
    imports = "; ".join(f"import pulumi_wasmcloud.provision.{m}" for m in modules)
    probe = (
        f"import sys; {imports}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'host_agent')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
