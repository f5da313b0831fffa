"""SSH to real machines: the test machines themselves (tests/machines.py), the connector's
host-key check, logins, bastion, timeouts and unreachable addresses, file uploads, and
facts read from a real machine. Every machine here runs a real sshd in its own network
namespace at a 198.18.N.x address; nothing leaves this computer."""

from __future__ import annotations

import os
import platform
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pulumi_wasmcloud.provision.connector import (
    AuthenticationFailed,
    CommandTimedOut,
    ConnectionLost,
    HostKeyRefused,
    SshConnection,
    SshTarget,
    Unreachable,
)
from pulumi_wasmcloud.provision.facts import (
    ARCH,
    PYTHON,
    Fact,
    FactError,
    machine_facts,
    nats_server_version,
    parse_arch,
    parse_os_release,
    probe,
    probe_many,
)
from pulumi_wasmcloud.provision.operations import NATS_SERVER_BINARY
from tests.machines import (
    KeyPair,
    Machine,
    Machines,
    boot_machines,
    booted,
    leftovers,
    unavailable,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def machines() -> Iterator[Machines]:
    yield from booted("core-1", "core-2")


def target(machines: Machines, machine: str, **fields: Any) -> SshTarget:
    """How to reach ``machine``, with ``fields`` changed."""
    values: dict[str, Any] = {
        "name": machine,
        "host": machines[machine].address,
        "private_key": machines.client_key.private_openssh,
        "known_host_key": machines[machine].host_key,
        "connect_timeout": 5.0,
        **fields,
    }
    return SshTarget(**values)


def test_machines_are_separate_and_leave_nothing_behind() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no test machines: {reason}")
    with boot_machines(["core-1", "core-2"]) as machines:
        with SshConnection.connect(target(machines, "core-1")) as core1:
            said = core1.check(
                "hostname; cat /proc/1/comm; mkdir -p /etc/wasmcloud && echo on-core-1 > "
                "/etc/wasmcloud/marker && echo written; "
                # a process that leaves the SSH session (as a supervised service does)
                "setsid -f sleep 600 </dev/null >/dev/null 2>&1; echo started"
            ).stdout.split()
            assert said == ["core-1", "sshd", "written", "started"]
        core2 = machines["core-2"]
        assert core2.inside(["hostname"]).stdout == "core-2\n"
        assert core2.inside(["ls", "/etc/wasmcloud"]).returncode != 0
        assert not os.path.exists("/etc/wasmcloud")  # the runner's /etc is untouched
        assert "sleep 600" in machines["core-1"].inside(["ps", "-eo", "args"]).stdout
        # Each machine reaches the other over the bridge (core-1's sshd greets core-2).
        with SshConnection.connect(target(machines, "core-2")) as over:
            address = machines["core-1"].address
            reach = f"timeout 5 head -c 7 < /dev/tcp/{address}/22"  # bash's /dev/tcp
            greeting = over.check(f"bash -c '{reach}'").stdout
            assert greeting == "SSH-2.0"
    assert leftovers(machines) == []
    assert not os.path.exists(machines.directory)


def test_facts_of_a_machine_are_read_strictly(machines: Machines) -> None:
    with SshConnection.connect(target(machines, "core-1")) as core1:
        facts = machine_facts(core1)
        # The machines share the runner's root filesystem (under their overlays).
        with open("/etc/os-release") as ours:
            assert facts.os == parse_os_release(ours.read())
        assert facts.arch == platform.machine()
        assert facts.python is not None and re.fullmatch(r"\d+\.\d+\.\d+", facts.python)
        assert facts.systemd is False  # PID 1 is sshd
        assert probe(core1, nats_server_version(NATS_SERVER_BINARY)) is None
        assert core1.commands_run == 2  # the four machine facts come in one round trip

        # Output that does not parse, and a probe that fails, are errors naming the fact.
        with pytest.raises(FactError) as unparsed:
            probe(core1, Fact(ARCH.name, "uname -a", parse_arch))
        assert str(unparsed.value).startswith("fact arch on core-1: not an architecture name")
        with pytest.raises(FactError) as failed:
            probe(core1, Fact("os", "cat /etc/no-such-release", parse_os_release))
        assert "fact os on core-1: the probe exited with code 1" in str(failed.value)
        assert "No such file or directory" in str(failed.value)
        # The same in a batch: the failing probe is the one named, the others parse.
        arch, python = probe_many(core1, [ARCH, PYTHON])
        assert (arch, python) == (facts.arch, facts.python)
        for broken in (
            Fact("os", "cat /etc/no-such-release", parse_os_release),
            Fact("os", "echo ID=debian; exit 4", parse_os_release),
            Fact("os", "echo 'ID=Debian Linux'", parse_os_release),
        ):
            with pytest.raises(FactError) as batch:
                probe_many(core1, [ARCH, broken, PYTHON])
            assert str(batch.value).startswith("fact os on core-1: ")


def test_a_wrong_host_key_is_refused_before_login_and_accepted_only_by_opting_out(
    machines: Machines,
) -> None:
    core1 = machines["core-1"]
    impostor_key = machines["core-2"].host_key  # the key we believe core-1 has
    known = SshConnection.connect(target(machines, "core-2"))
    logins_earlier = core1.sshd_log().count("Accepted publickey")
    real_fingerprint = SshConnection.connect(target(machines, "core-1"))
    try:
        expected_old, expected_new = (
            known.host_key_fingerprint,
            real_fingerprint.host_key_fingerprint,
        )
    finally:
        known.close()
        real_fingerprint.close()
    # sshd's log reaches the test through a reader thread: count once our login is in it.
    logins_before = logged_at_least(core1, "Accepted publickey", logins_earlier + 1)

    with pytest.raises(HostKeyRefused) as refused:
        SshConnection.connect(target(machines, "core-1", known_host_key=impostor_key))
    assert str(refused.value).startswith(
        f"refused: host key of core-1 changed from {expected_old} to {expected_new}."
    )
    assert "give it as known_host_key" in str(refused.value)
    # Refused before authenticating: core-1's sshd saw no login from that attempt.
    assert core1.sshd_log().count("Accepted publickey") == logins_before

    # A known key of a type the machine does not have (RSA; it has ed25519) is refused too.
    with pytest.raises(HostKeyRefused) as other_type:
        SshConnection.connect(target(machines, "core-1", known_host_key=rsa_public_line()))
    assert str(other_type.value).startswith(
        "refused: core-1 shows no ssh-rsa host key, the type of its known key SHA256:"
    )

    with SshConnection.connect(
        target(machines, "core-1", known_host_key=None, verify_host_key=False)
    ) as trusting:
        assert trusting.host_key == " ".join(core1.host_key.split()[:2])
        assert trusting.check("hostname").stdout == "core-1\n"


def logged_at_least(machine: Machine, text: str, count: int, timeout: float = 10.0) -> int:
    """How often ``text`` is in the machine's sshd log, once it is there ``count`` times."""
    deadline = time.monotonic() + timeout
    while (found := machine.sshd_log().count(text)) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times by {machine.name}"
        time.sleep(0.02)
    return found


def rsa_public_line() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode()


def test_a_key_the_machine_does_not_know_is_refused_by_name(machines: Machines) -> None:
    stranger = KeyPair.generate()
    with pytest.raises(AuthenticationFailed) as refused:
        SshConnection.connect(target(machines, "core-1", private_key=stranger.private_openssh))
    said = str(refused.value)
    assert said.startswith("core-1 refused the login as root with key SHA256:")
    assert "authorized_keys" in said


def test_an_address_without_a_machine_fails_within_the_timeout_naming_it(
    machines: Machines,
) -> None:
    ghost = target(
        machines,
        "core-1",
        name="core-9",
        host=machines.unused_address(),
        known_host_key=None,
        verify_host_key=False,
        connect_timeout=2.0,
        attempts=2,
        retry_delay=0.5,
    )
    started = time.monotonic()
    with pytest.raises(Unreachable) as raised:
        SshConnection.connect(ghost)
    elapsed = time.monotonic() - started
    said = str(raised.value)
    assert said.startswith(f"cannot reach core-9 at {machines.unused_address()}:22: ")
    assert "(2 attempts, 2s timeout each)" in said
    # Two attempts of at most 2 s and one pause of 0.5 s, with room for a slow machine.
    assert elapsed < 2 * 2.0 + 0.5 + 3.0, elapsed

    # A live machine where nothing listens on the port: refused, named.
    with pytest.raises(Unreachable) as refused:
        SshConnection.connect(target(machines, "core-1", port=2222, attempts=1))
    assert "core-1 at " in str(refused.value) and "connection refused" in str(refused.value)


def test_a_machine_behind_a_bastion_is_reached_through_it(machines: Machines) -> None:
    bastion = target(machines, "core-1")
    with SshConnection.connect(target(machines, "core-2", bastion=bastion)) as behind:
        client_address = behind.check("echo $SSH_CONNECTION").stdout.split()[0]
        assert client_address == machines["core-1"].address  # not the runner's
        assert behind.check("hostname").stdout == "core-2\n"

    ghost = target(
        machines, "core-2", name="core-9", host=machines.unused_address(),
        known_host_key=None, verify_host_key=False, bastion=bastion, attempts=1,
    )  # fmt: skip
    with pytest.raises(Unreachable) as raised:
        SshConnection.connect(ghost)
    assert str(raised.value).startswith(
        f"cannot reach core-9 at {machines.unused_address()}:22 through core-1: "
        "core-1 could not connect onward"
    )


def test_commands_time_out_by_name_and_files_are_written_whole(machines: Machines) -> None:
    with SshConnection.connect(target(machines, "core-1")) as core1:
        started = time.monotonic()
        with pytest.raises(CommandTimedOut) as slow:
            core1.run("sleep 30", timeout=1.0)
        assert time.monotonic() - started < 10
        assert str(slow.value).startswith("`sleep 30` did not finish on core-1 within 1s")
        # The connection is still good for the next command.
        result = core1.run("echo out; echo err >&2; exit 3")
        assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")

        big = os.urandom(3 * 1024 * 1024)
        core1.put_file(big, "/opt/wasmcloud/blob", 0o640)
        core1.put_file(b"second\n", "/opt/wasmcloud/blob", 0o600)
        listing = core1.check("stat -c '%a %s %n' /opt/wasmcloud/*; cat /opt/wasmcloud/blob")
        # One file, of the second content and mode: no temporary file left beside it.
        assert listing.stdout == "600 7 /opt/wasmcloud/blob\nsecond\n"
        with pytest.raises(ValueError, match="absolute path"):
            core1.put_file(b"x", "relative", 0o600)


def test_a_connection_dropped_mid_command_is_named_and_not_reused(machines: Machines) -> None:
    with SshConnection.connect(target(machines, "core-1")) as core1:
        # The command kills the sshd process serving this connection (its parent).
        with pytest.raises(ConnectionLost) as dropped:
            core1.run("echo started; kill -9 $PPID; sleep 30", timeout=20)
        assert str(dropped.value).startswith(
            f"the SSH connection to core-1 ({machines['core-1'].address}:22) dropped while "
            "running `echo started; kill -9 $PPID; sleep 30`"
        )
        with pytest.raises(ConnectionLost):
            core1.run("true")
    # A new connection works: the machine itself is fine.
    with SshConnection.connect(target(machines, "core-1")) as again:
        assert again.check("hostname").stdout == "core-1\n"


def test_a_user_with_sudo_provisions_as_root_and_one_without_is_refused_by_name(
    machines: Machines,
) -> None:
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed (scripts/bootstrap-test-tools.sh installs it)")
    core1 = machines["core-1"]
    core1.add_user("deploy")
    core1.add_user("guest", sudo=None)
    core1.add_user("asker", sudo="ALL")  # sudo, but with a password
    with SshConnection.connect(target(machines, "core-1", user="deploy")) as deploy:
        said = deploy.check("id -un; echo $SUDO_USER").stdout.split()
        assert said == ["root", "deploy"]
        deploy.put_file(b"x\n", "/etc/wasmcloud/by-deploy", 0o600)
        assert deploy.check("stat -c '%U %a' /etc/wasmcloud/by-deploy").stdout == "root 600\n"
        assert machine_facts(deploy).os.id
    for user in ("guest", "asker"):
        with pytest.raises(AuthenticationFailed) as refused:
            SshConnection.connect(target(machines, "core-1", user=user))
        assert str(refused.value).startswith(
            f"{user} on core-1 cannot use sudo without a password ("
        )
        assert "NOPASSWD" in str(refused.value)
    # Opting out of sudo runs as the user itself.
    with SshConnection.connect(target(machines, "core-1", user="guest", sudo=False)) as guest:
        assert guest.check("id -un").stdout == "guest\n"
