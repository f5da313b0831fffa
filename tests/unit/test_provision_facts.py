"""The facts' parsers: what a probe's output means, and output that means nothing is an
error (never a default). Probing real machines is in tests/integration/test_provision_ssh.py."""

from __future__ import annotations

import pytest

from pulumi_wasmcloud.provision.facts import (
    OsRelease,
    parse_arch,
    parse_nats_server_version,
    parse_os_release,
    parse_python_version,
    parse_sha256,
    parse_systemd_is_init,
)
from pulumi_wasmcloud.provision.service import ServiceState, parse_service_state

DEBIAN = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
HOME_URL="https://www.debian.org/"
"""

ALPINE_EDGE = """NAME="Alpine Linux"
ID=alpine
# a comment
PRETTY_NAME='Alpine Linux edge'
"""


def test_os_release_is_read_with_quotes_and_without_a_version() -> None:
    assert parse_os_release(DEBIAN) == OsRelease("debian", "12")
    assert str(parse_os_release(DEBIAN)) == "debian 12"
    assert parse_os_release(ALPINE_EDGE) == OsRelease("alpine", None)


@pytest.mark.parametrize(
    ("output", "said"),
    [
        ('NAME="Debian"\nVERSION_ID="12"\n', "ID="),
        ("ID=\n", "ID="),
        ("ID=Debian Linux\n", "unquoted spaces"),
        ("<html>not found</html>\n", "KEY=value"),
        ('ID="debian\n', "not a shell word"),
    ],
)
def test_os_release_that_does_not_parse_is_refused(output: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        parse_os_release(output)


def test_architecture_is_one_name() -> None:
    assert parse_arch("x86_64\n") == "x86_64"
    for output in ("", "x86_64\naarch64\n", "x 86\n", "Linux x86_64 GNU\n"):
        with pytest.raises(ValueError):
            parse_arch(output)


def test_systemd_is_init_only_when_pid_1_is_systemd() -> None:
    assert parse_systemd_is_init("systemd\n") is True
    assert parse_systemd_is_init("sshd\n") is False
    with pytest.raises(ValueError):
        parse_systemd_is_init("")


def test_python_version_or_absent() -> None:
    assert parse_python_version("3.11.7\n") == "3.11.7"
    assert parse_python_version("absent\n") is None
    for output in ("Python 3.11.7\n", "3.11\n", "", "sh: python3: not found\n"):
        with pytest.raises(ValueError, match="version"):
            parse_python_version(output)


def test_nats_server_version_or_absent() -> None:
    assert parse_nats_server_version("nats-server: v2.12.1\n") == "2.12.1"
    assert parse_nats_server_version("nats-server: v2.12.0-RC.3\n") == "2.12.0-RC.3"
    assert parse_nats_server_version("absent\n") is None
    for output in ("v2.12.1\n", "nats-server: 2.12.1\n", "Segmentation fault\n", ""):
        with pytest.raises(ValueError, match=r"nats-server: vX\.Y\.Z"):
            parse_nats_server_version(output)


def test_sha256_or_absent() -> None:
    digest = "a" * 64
    assert parse_sha256(f"{digest}  -\n") == digest
    assert parse_sha256("absent\n") is None
    for output in (f"{digest}  /etc/passwd\n", "A" * 64 + "\n", "abc  -\n", ""):
        with pytest.raises(ValueError, match="sha256"):
            parse_sha256(output)


def test_service_state_is_two_lines() -> None:
    digest = "b" * 64
    assert parse_service_state(f"{digest}  -\nrunning\n") == ServiceState(digest, True)
    assert parse_service_state("absent\nstopped\n") == ServiceState(None, False)
    for output in ("absent\n", "absent\nactive\n", "absent\nrunning\nextra\n"):
        with pytest.raises(ValueError, match="running"):
            parse_service_state(output)
