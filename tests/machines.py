"""Test machines for SSH provisioning: each a network namespace on one bridge, running
its own real sshd on its own address, with a private view of the files we change.

A machine is three namespaces around one sshd (started by ``unshare``):

- network: its own 198.18.N.x address on a bridge this machine (the test runner) also
  sits on, so the runner and the machines reach each other and nothing else;
- mount: ``/etc``, ``/opt``, ``/var/lib``, ``/var/log`` and ``/home`` are overlays whose
  writable layer is a tmpfs of that machine, and ``/run`` is its own tmpfs, so what
  provisioning installs stays on that machine and disappears with it;
- pid (and uts): sshd is PID 1, so a machine has no systemd (service.py's supervised
  mode) and killing the machine kills everything started on it, however detached.

Logins are ``root`` (or a user ``Machine.add_user`` made) with one ed25519 key made for
the session (``Machines.client_key``); every machine has its own host key
(``Machine.host_key``), which a connector verifies.
``boot_machines`` is the context manager a fixture wraps; on exit nothing is left:
processes, namespaces, veth pairs, bridge and files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.netns import Bridge, NetworkNamespace
from tests.netns import unavailable as netns_unavailable

SSHD = Path("/usr/sbin/sshd")
SSH_PORT = 22
# Overlaid per machine: where provisioning writes binaries, config, state and logs.
PRIVATE_TREES = ("/etc", "/opt", "/var/lib", "/var/log", "/home")
BOOT_TIMEOUT = 20.0
# A machine's namespaces besides its network one: mounts (private, so our overlays stay
# inside), hostname, and pids (sshd becomes PID 1; --kill-child: it dies with unshare).
UNSHARE = (
    "unshare", "--mount", "--propagation", "private", "--uts",
    "--pid", "--fork", "--kill-child", "--mount-proc",
)  # fmt: skip


@dataclass(frozen=True)
class KeyPair:
    """An ed25519 key: the private half in OpenSSH's PEM form, the public half as an
    ``authorized_keys`` / ``known_hosts`` line body (``ssh-ed25519 AAAA...``)."""

    private_openssh: str
    public_line: str

    @classmethod
    def generate(cls, comment: str = "") -> KeyPair:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        return cls(private, public.decode() + (f" {comment}" if comment else ""))


def unavailable() -> str | None:
    """Why test machines cannot be booted here (None when they can), for ``pytest.skip``."""
    reason = netns_unavailable()
    if reason is not None:
        return reason
    if not SSHD.exists():
        return "openssh-server is not installed (scripts/bootstrap-test-tools.sh installs it)"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"util-linux's `{tool}` is not installed"
    return None


# Run inside a machine (its mount namespace) by Machine.own_files: walks each private
# tree's writable layer and prints [kind, path on the machine, detail] as JSON.
_LIST_LAYERS = """
import hashlib, json, os, stat, sys
found = []
for tree, upper in json.loads(sys.argv[1]).items():
    for root, dirs, files in os.walk(upper):
        for name in dirs + files:
            full = os.path.join(root, name)
            path = os.path.join(tree, os.path.relpath(full, upper))
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                found.append(["link", path, "-> " + os.readlink(full)])
            elif stat.S_ISDIR(mode):
                found.append(["dir", path, ""])
            elif stat.S_ISCHR(mode):
                found.append(["deleted", path, ""])
            elif stat.S_ISREG(mode):
                with open(full, "rb") as f:
                    found.append(["file", path, hashlib.sha256(f.read()).hexdigest()])
            else:
                found.append(["other", path, oct(mode)])
print(json.dumps(found))
"""


@dataclass
class Machine:
    """One booted machine. ``address`` is where its sshd listens (port 22)."""

    name: str
    address: str
    host_key: str  # its public host key line, as a known key is given to a connector
    namespace: NetworkNamespace
    directory: Path  # on the runner: sshd config, keys, sshd's log
    sshd: subprocess.Popen[str]
    net_inode: int  # its network namespace's, to find processes left in it after teardown
    _log_lines: list[str] = field(default_factory=list)

    @property
    def init_pid(self) -> int:
        """The runner's pid of the machine's PID 1 (its sshd)."""
        children = Path(f"/proc/{self.sshd.pid}/task/{self.sshd.pid}/children").read_text()
        return int(children.split()[0])

    def inside(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run a command on the machine as root (its network, files and processes), not
        through SSH: for tests that look at what provisioning left there."""
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        command = ["nsenter", "-t", str(self.init_pid), "-m", "-u", "-n", "-p", *argv]
        return subprocess.run(command, check=False, **kwargs)

    def add_user(self, user: str, sudo: str | None = "NOPASSWD: ALL") -> None:
        """A login user on this machine only (its /etc and /home are its own), who logs
        in with the session key; with ``sudo``, that sudoers rule (``None``: no sudo)."""
        # Password "*": no password login, but not locked ("!"), which sshd would refuse.
        steps = [["useradd", "--create-home", "--shell", "/bin/bash", "--password", "*", user]]
        if sudo is not None:
            rule = f"{user} ALL=(ALL) {sudo}\n"
            steps.append(["sh", "-c", f"printf %s {shlex.quote(rule)} > /etc/sudoers.d/{user}"])
        for argv in steps:
            done = self.inside(argv)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} on {self.name}: {done.stderr.strip()}")

    def own_files(self) -> list[str]:
        """What this machine's private trees hold that the runner's do not, one sorted line
        each: ``file <path> <sha256>``, ``link <path> -> <target>``, ``dir <path>`` (a
        directory only this machine has) and ``deleted <path>`` (an overlay whiteout). Read
        from each tree's writable layer, so it is exactly what was written on the machine;
        directories copied up only because something under them changed are left out
        (the runner's tree, the overlay's lower layer, has them too)."""
        layers = {tree: str(_layer(self.directory, tree) / "upper") for tree in PRIVATE_TREES}
        listed = self.inside([sys.executable, "-c", _LIST_LAYERS, json.dumps(layers)])
        if listed.returncode != 0:
            raise RuntimeError(f"listing the files of {self.name}: {listed.stderr.strip()}")
        lines = []
        for kind, path, detail in json.loads(listed.stdout):
            if kind == "dir" and Path(path).is_dir():
                continue  # copied up: the runner has it
            lines.append(f"{kind} {path} {detail}".rstrip())
        return sorted(lines)

    def processes(self) -> dict[int, str]:
        """The processes running on this machine (pid -> command line) besides its PID 1
        (sshd) and the ``ps`` that lists them."""
        listed = self.inside(["ps", "-ww", "-eo", "pid=,args="])
        if listed.returncode != 0:
            raise RuntimeError(f"ps on {self.name}: {listed.stderr.strip()}")
        found = {}
        for row in listed.stdout.splitlines():
            pid, _, args = row.strip().partition(" ")
            if pid != "1" and args.strip() != "ps -ww -eo pid=,args=":
                found[int(pid)] = args.strip()
        return found

    def sshd_log(self) -> str:
        return "".join(self._log_lines)

    def power_off(self) -> None:
        """Kill the machine's PID 1, which takes every process on it (the kernel ends a
        pid namespace with its init); ``unshare`` then exits. Killing ``unshare`` instead
        would wait: it ignores SIGTERM while its child runs."""
        if self.sshd.poll() is None:
            with contextlib.suppress(ProcessLookupError, FileNotFoundError, IndexError):
                os.kill(self.init_pid, signal.SIGKILL)
            try:
                self.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait()


@dataclass
class Machines:
    """The booted machines, by name, on one bridge; ``client_key`` logs in as root."""

    bridge: Bridge
    client_key: KeyPair
    directory: Path
    by_name: dict[str, Machine]

    def __getitem__(self, name: str) -> Machine:
        return self.by_name[name]

    def __iter__(self) -> Iterator[Machine]:
        return iter(self.by_name.values())

    def unused_address(self) -> str:
        """An address on the machines' network that no machine holds (nothing answers it)."""
        return str(self.bridge.network[250])


def _sshd_config(machine_dir: Path, address: str) -> str:
    # StrictModes off: the keys live in a pytest temp dir whose modes sshd would refuse.
    # PAM off: a namespace has no login session machinery, and keys are all we use.
    return "\n".join(
        [
            f"ListenAddress {address}:{SSH_PORT}",
            f"HostKey {machine_dir}/ssh_host_ed25519_key",
            f"AuthorizedKeysFile {machine_dir}/authorized_keys",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding yes",
            "PidFile none",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def _layer(machine_dir: Path, tree: str) -> Path:
    """Where a private tree's overlay keeps its writable layer (``upper``) and work dir,
    on the machine's own tmpfs (seen only inside the machine's mount namespace)."""
    return machine_dir / "fs" / tree.strip("/").replace("/", "-")


def _boot_script(name: str, machine_dir: Path, config: Path) -> str:
    """What the machine's PID 1 runs before it becomes sshd: the private file trees."""
    fs = machine_dir / "fs"
    lines = ["set -e", f"mount -t tmpfs -o mode=0755 {shlex.quote('machine-' + name)} {fs}"]
    for tree in PRIVATE_TREES:
        layer = _layer(machine_dir, tree)
        lines += [
            f"mkdir -p {layer}/upper {layer}/work",
            f"mount -t overlay overlay -o lowerdir={tree},upperdir={layer}/upper,"
            f"workdir={layer}/work {tree}",
        ]
    lines += [
        "mount -t tmpfs -o mode=0755 run /run",
        "mkdir -p /run/sshd",
        f"echo {shlex.quote(name)} > /proc/sys/kernel/hostname",
        # As an installer would: the machine's own name resolves (sudo asks for it).
        f"echo {shlex.quote('127.0.1.1 ' + name)} >> /etc/hosts",
        f"exec {SSHD} -D -e -f {config}",
    ]
    return "\n".join(lines)


def _boot(name: str, host: int, bridge: Bridge, client_key: KeyPair, directory: Path) -> Machine:
    return boot_machine(name, bridge.address(host), bridge, [client_key.public_line], directory)


def boot_machine(
    name: str, address: str, bridge: Bridge, authorized_keys: Sequence[str], directory: Path
) -> Machine:
    """Boot one machine ``name`` at ``address`` (with the bridge's prefix, e.g.
    ``198.19.16.4/16``) on ``bridge``, letting in ``authorized_keys`` (``ssh-ed25519 AAAA...``
    lines; none: nobody logs in) for root and every user, as cloud-init would from a key
    pair. Its files go in ``directory / name``, which must not exist yet. The caller owns
    the machine: ``power_off``, then ``namespace.cleanup()`` and removing its directory."""
    machine_dir = directory / name
    (machine_dir / "fs").mkdir(parents=True)
    host_key = KeyPair.generate(f"host@{name}")
    key_file = machine_dir / "ssh_host_ed25519_key"
    key_file.write_text(host_key.private_openssh)
    key_file.chmod(0o600)
    (machine_dir / "authorized_keys").write_text("".join(f"{key}\n" for key in authorized_keys))
    (machine_dir / "authorized_keys").chmod(0o644)
    namespace = NetworkNamespace.create(address=address, bridge=bridge)
    machine: Machine | None = None
    try:
        config = machine_dir / "sshd_config"
        config.write_text(_sshd_config(machine_dir, namespace.address))
        sshd = namespace.popen(
            [*UNSHARE, "sh", "-c", _boot_script(name, machine_dir, config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        net_inode = os.stat(f"/run/netns/{namespace.name}").st_ino
        machine = Machine(
            name, namespace.address, host_key.public_line, namespace, machine_dir, sshd, net_inode
        )
        _wait_listening(machine)
    except BaseException:
        if machine is not None:
            machine.power_off()
        namespace.cleanup()
        raise
    return machine


def _wait_listening(machine: Machine) -> None:
    """Until sshd says it listens; then keep draining its log so it never blocks."""
    stderr = machine.sshd.stderr
    assert stderr is not None
    listening = threading.Event()

    def drain() -> None:
        for line in stderr:
            machine._log_lines.append(line)
            if "Server listening on" in line:
                listening.set()

    threading.Thread(target=drain, daemon=True, name=f"sshd-{machine.name}").start()
    if not listening.wait(BOOT_TIMEOUT):
        raise RuntimeError(
            f"sshd on test machine {machine.name} did not start listening within "
            f"{BOOT_TIMEOUT:.0f}s: {machine.sshd_log() or '(no output)'}"
        )


@contextmanager
def boot_machines(names: Sequence[str]) -> Iterator[Machines]:
    """Boot one machine per name on a fresh bridge; remove everything on exit."""
    if len(set(names)) != len(names):
        raise ValueError(f"machine names repeat: {list(names)}")
    directory = Path(tempfile.mkdtemp(prefix="wc-machines-"))
    directory.chmod(0o755)  # sshd reads authorized_keys as the user logging in
    client_key = KeyPair.generate("pulumi-wasmcloud-tests")
    bridge = Bridge.create()
    booted: list[Machine] = []
    try:
        for host, name in enumerate(names, start=2):
            booted.append(_boot(name, host, bridge, client_key, directory))
        yield Machines(bridge, client_key, directory, {m.name: m for m in booted})
    finally:
        for machine in booted:
            machine.power_off()
            machine.namespace.cleanup()
        bridge.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def leftovers(machines: Machines) -> list[str]:
    """What of ``machines`` is still on this machine after teardown (empty when nothing)."""
    left = machines_left(list(machines))
    if machines.bridge.exists():
        left.append(f"bridge {machines.bridge.name}")
    if machines.directory.exists():
        left.append(f"directory {machines.directory}")
    return left


def machines_left(machines: Sequence[Machine]) -> list[str]:
    """What of these machines (booted one by one with ``boot_machine``) is still on this
    machine: namespaces, veth pairs, sshd, directories, processes in their networks."""
    left = []
    for machine in machines:
        if machine.namespace.exists():
            left.append(f"namespace {machine.namespace.name}")
        if machine.namespace.link_exists():
            left.append(f"veth of {machine.name}")
        if machine.sshd.poll() is None:
            left.append(f"sshd of {machine.name} (pid {machine.sshd.pid})")
        if machine.directory.exists():
            left.append(f"directory {machine.directory}")
    left += [f"process {pid} in a machine" for pid in _pids_in_machines(machines)]
    return left


def _pids_in_machines(machines: Iterable[Machine]) -> list[int]:
    """Processes whose network namespace is one of the machines' (by inode)."""
    inodes = {machine.net_inode for machine in machines}
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino in inodes:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def booted(*names: str) -> Iterator[Machines]:
    """For a fixture: ``yield from booted("core-1", "core-2")`` skips when machines cannot
    be booted here, and after the test checks that their teardown left nothing."""
    import pytest  # only fixtures need it; the module itself is plain

    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no test machines: {reason}")
    with boot_machines(names) as machines:
        yield machines
    left = leftovers(machines)
    assert not left, f"test machines left behind: {left}"
