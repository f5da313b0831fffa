"""A network namespace joined to this machine by a veth pair, for tests of lattice parts
at a non-loopback address (a NATS server, later an SSH host) without any real network.

Addresses come from 198.18.0.0/15 (RFC 2544's benchmarking range): the namespace side
gets ``address`` (e.g. ``198.18.0.2/24``), this machine's side the first address of the
same /24 (``198.18.0.1``). Everything a ``NetworkNamespace`` made goes with ``cleanup``:
the processes it ran, the namespace and the veth pair. Needs root and iproute2's ``ip``;
``unavailable()`` says why not, for ``pytest.skip``.

Several namespaces that must reach each other (a NATS cluster, a bastion and the machine
behind it) share a ``Bridge``: this machine holds the bridge's first address, and each
namespace's veth pair has its outside end enslaved to the bridge instead of an address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

TEST_RANGE = ipaddress.ip_network("198.18.0.0/15")
_names = itertools.count()


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"wcprobe{os.getpid()}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    made = _ip("link", "add", f"{probe[:12]}-o", "type", "veth", "peer", "name", f"{probe[:12]}-i")
    if made.returncode != 0:
        return f"veth pairs cannot be made here: {made.stderr.strip()}"
    _ip("link", "del", f"{probe[:12]}-o")
    return None


def free_subnet() -> str:
    """The first ``198.18.N.2/24`` whose /24 no interface on this machine uses, so tests
    (and helpers) running side by side do not share a route."""
    used = set(re.findall(r"inet (198\.1[89]\.\d+)\.\d+/", _ip("-o", "-4", "addr").stdout))
    for third in range(256):
        if f"198.18.{third}" not in used:
            return f"198.18.{third}.2/24"
    raise RuntimeError("every 198.18.N.0/24 is in use on this machine")


def _shared(network: ipaddress.IPv4Network | ipaddress.IPv6Network, ours: str) -> bool:
    """Whether an interface on this machine but ``ours`` has an address in ``network``."""
    for line in _ip("-o", "-4", "addr").stdout.splitlines():
        fields = line.split()
        interface, address = fields[1], ipaddress.ip_interface(fields[3])
        if interface != ours and address.ip in network:
            return True
    return False


def _checked_interface(address: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    interface = ipaddress.ip_interface(address)
    if interface.network.prefixlen < 16 or not interface.network.subnet_of(TEST_RANGE):  # type: ignore[arg-type]
        raise ValueError(f"{address}: test namespaces use addresses in {TEST_RANGE} only")
    return interface


class Bridge:
    """A Linux bridge on this machine holding the first address of a 198.18.N.0/24, which
    ``NetworkNamespace.create(..., bridge=...)`` joins. ``cleanup`` removes it."""

    def __init__(self, name: str, network: str) -> None:
        interface = _checked_interface(network)
        self.name = name
        self.network = interface.network
        self.gateway = str(interface.network[1])  # this machine's side

    @classmethod
    def create(cls, name: str | None = None, network: str | None = None) -> Bridge:
        """A fresh bridge ``name`` (default: unique to this process) for ``network``
        (default: the /24 of ``free_subnet()``), up, with this machine at its first address."""
        name = (name or f"wc{os.getpid()}b{next(_names)}")[:15]
        if network is not None:
            return cls._made(name, network)
        # free_subnet() and taking it are two steps, and other test runs (other helpers)
        # may take the same /24 between them: whoever then sees someone else's address in
        # it gives it up and takes another.
        for _ in range(8):
            bridge = cls._made(name, str(ipaddress.ip_interface(free_subnet()).network))
            if not bridge._shared():
                return bridge
            bridge.cleanup()
        raise RuntimeError("no 198.18.N.0/24 stayed free for a test bridge after 8 tries")

    @classmethod
    def _made(cls, name: str, network: str) -> Bridge:
        bridge = cls(name, network)
        try:
            for args in (
                ("link", "add", bridge.name, "type", "bridge"),
                ("addr", "add", f"{bridge.gateway}/{bridge.network.prefixlen}", "dev", bridge.name),
                ("link", "set", bridge.name, "up"),
            ):
                done = _ip(*args)
                if done.returncode != 0:
                    raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
        except BaseException:
            bridge.cleanup()
            raise
        return bridge

    def _shared(self) -> bool:
        return _shared(self.network, self.name)

    def address(self, host: int) -> str:
        """The ``host``-th address of the network with its prefix (``198.18.N.host/24``)."""
        if not 1 < host < self.network.num_addresses - 1:
            raise ValueError(f"{host}: not a namespace's host number in {self.network}")
        return f"{self.network[host]}/{self.network.prefixlen}"

    def cleanup(self) -> None:
        _ip("link", "del", self.name)

    def exists(self) -> bool:
        return _ip("link", "show", self.name).returncode == 0


class NetworkNamespace:
    """``create(name, address)``, then ``run``/``popen`` commands inside, then ``cleanup``."""

    def __init__(self, name: str, address: str, bridge: Bridge | None = None) -> None:
        interface = _checked_interface(address)
        gateway = interface.network[1]
        if interface.ip == gateway:
            raise ValueError(f"{address}: the first address of the subnet is this machine's side")
        if bridge is not None and interface.network != bridge.network:
            raise ValueError(f"{address}: not in the network of bridge {bridge.name}")
        self.bridge = bridge
        self.name = name
        self.address = str(interface.ip)  # the namespace's side
        self.prefixlen = interface.network.prefixlen
        self.gateway = str(gateway)  # this machine's side
        # Interface names are at most 15 bytes.
        self._outside = f"{name[:12]}-o"
        self._inside = f"{name[:12]}-i"
        self._processes: list[subprocess.Popen[Any]] = []

    @classmethod
    def create(
        cls, name: str | None = None, address: str | None = None, bridge: Bridge | None = None
    ) -> NetworkNamespace:
        """A fresh namespace ``name`` (default: unique to this process) at ``address``
        (default: ``free_subnet()``), reachable from this machine, with loopback up. With a
        ``bridge``, ``address`` is required and in its network, and the namespace reaches
        every other namespace on that bridge."""
        name = name or f"wc{os.getpid()}n{next(_names)}"
        if bridge is not None and address is None:
            raise ValueError("a namespace on a bridge needs its address in the bridge's network")
        # As Bridge.create: a /24 that another test run took at the same time is given
        # up for another.
        for _ in range(1 if address else 8):
            namespace = cls(name, address or free_subnet(), bridge)
            try:
                namespace._setup()
            except BaseException:
                namespace.cleanup()
                raise
            network = ipaddress.ip_interface(f"{namespace.address}/{namespace.prefixlen}").network
            if address or not _shared(network, namespace._outside):
                return namespace
            namespace.cleanup()
        raise RuntimeError("no 198.18.N.0/24 stayed free for a test namespace after 8 tries")

    def _setup(self) -> None:
        def ip(*args: str) -> None:
            done = _ip(*args)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

        ip("netns", "add", self.name)
        ip("link", "add", self._outside, "type", "veth", "peer", "name", self._inside)
        ip("link", "set", self._inside, "netns", self.name)
        if self.bridge is None:
            ip("addr", "add", f"{self.gateway}/{self.prefixlen}", "dev", self._outside)
        else:
            ip("link", "set", self._outside, "master", self.bridge.name)
        ip("link", "set", self._outside, "up")
        inside = ("netns", "exec", self.name, "ip")
        ip(*inside, "addr", "add", f"{self.address}/{self.prefixlen}", "dev", self._inside)
        ip(*inside, "link", "set", self._inside, "up")
        ip(*inside, "link", "set", "lo", "up")

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run a command inside to completion (``subprocess.run`` arguments)."""
        kwargs.setdefault("timeout", 60)
        return subprocess.run(self.command(argv), check=False, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a long-running command inside; ``cleanup`` stops it."""
        process = subprocess.Popen(self.command(argv), **kwargs)
        self._processes.append(process)
        return process

    def cleanup(self) -> None:
        """Stop what ran inside, then remove the namespace and the veth pair."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        # Whatever else still runs in the namespace (a child that escaped its parent).
        for pid in _ip("netns", "pids", self.name).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        _ip("netns", "del", self.name)  # takes the inside end of the pair, and so both
        _ip("link", "del", self._outside)  # in case the pair never reached the namespace

    def set_cable(self, plugged: bool) -> None:
        """Unplug (or plug back) the namespace's cable: its end on this machine's side
        goes down, so packets are dropped without a reset, as when a machine's network
        goes away; connections survive a short cut (TCP resends once it is back)."""
        done = _ip("link", "set", self._outside, "up" if plugged else "down")
        if done.returncode != 0:
            raise RuntimeError(f"ip link set {self._outside}: {done.stderr.strip()}")

    def exists(self) -> bool:
        return self.name in _ip("netns", "list").stdout.split()

    def link_exists(self) -> bool:
        """Whether this machine's end of the veth pair is still there."""
        return _ip("link", "show", self._outside).returncode == 0
