"""Control-interface latency: our host's inventory reply vs a bare NATS echo, on a plain
lattice and on a secured one, in the same run.

Starts three lattices, each a real nats-server (JetStream, temporary store) and one host
process: plain (no auth, no TLS), secured (benchmarks/secured.py: operator mode, mutual
TLS, the host and this client on their own role users) and, to tell the two costs apart,
operator mode without TLS. Then sends ``host.get`` requests to each host and requests to
a bare nats-py echo responder on each server, alternating the lattices in rounds so all
see the same machine load, 2,000 of each kind by default. Targets: host p50 under 2x the
echo p50; secured p50 at most 1.3x plain.

    python benchmarks/ctl.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.secured import SecuredNats
from host_agent.lattice import event_loop
from host_agent.lattice.subjects import INBOX_WILDCARD, CtlSubjects
from host_agent.security.jwt import Permissions
from tests.lattice import HostProcess, NatsServer, first_host_id

TARGET_RATIO = 2.0
SECURED_TARGET = 1.3  # secured p50 / plain p50
ECHO = "bench.echo"
# The echo's users on the secured server: exactly the echo subject and the replies.
ECHO_PERMISSIONS = Permissions(
    pub_allow=(ECHO, INBOX_WILDCARD), sub_allow=(ECHO, INBOX_WILDCARD), allow_responses=True
)


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


async def measure(nc: NatsClient, subject: str, count: int, into: list[float]) -> None:
    for _ in range(count):
        start = time.perf_counter()
        await nc.request(subject, b"", timeout=5)
        into.append(time.perf_counter() - start)


@dataclass
class Peer:
    """One lattice as the benchmark talks to it: a requester, an echo responder."""

    label: str
    nc: NatsClient  # asks the host
    echo_nc: NatsClient  # answers echoes
    echo_requester: NatsClient  # asks the echo
    host_subject: str = ""
    host: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)

    @classmethod
    async def open(
        cls, label: str, connect: Callable[[str, Permissions | None], Awaitable[NatsClient]]
    ) -> Peer:
        peer = cls(
            label,
            await connect("bench", None),
            await connect("echo", ECHO_PERMISSIONS),
            await connect("echo-client", ECHO_PERMISSIONS),
        )

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await peer.echo_nc.subscribe(ECHO, cb=echo)
        await peer.echo_nc.flush()
        peer.host_subject = CtlSubjects().host_get(await first_host_id(peer.nc, attempts=600))
        for _ in range(50):  # warm-up
            await peer.nc.request(peer.host_subject, b"", timeout=5)
            await peer.echo_requester.request(ECHO, b"", timeout=5)
        return peer

    async def close(self) -> None:
        for nc in (self.nc, self.echo_nc, self.echo_requester):
            await nc.close()


async def run(
    plain: NatsServer, secured: list[tuple[str, SecuredNats]], count: int, rounds: int
) -> list[Peer]:
    async def plain_connect(name: str, permissions: Permissions | None) -> NatsClient:
        return await nats.connect(plain.url)

    def secured_connect(server: SecuredNats) -> Callable[..., Awaitable[NatsClient]]:
        async def connect(name: str, permissions: Permissions | None) -> NatsClient:
            return await server.connect(name=name, permissions=permissions)

        return connect

    peers = [await Peer.open("plain", plain_connect)]
    for label, server in secured:
        peers.append(await Peer.open(label, secured_connect(server)))
    try:
        per_round = max(1, count // rounds)
        for _ in range(rounds):
            for peer in peers:
                await measure(peer.nc, peer.host_subject, per_round, peer.host)
            for peer in peers:
                await measure(peer.echo_requester, ECHO, per_round, peer.bare)
    finally:
        for peer in peers:
            await peer.close()
    return peers


def line(label: str, samples: list[float]) -> str:
    return (
        f"{label:25s} p50 {percentile(samples, 50) * 1e6:8.0f} us   "
        f"p99 {percentile(samples, 99) * 1e6:8.0f} us   ({len(samples)} requests)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per peer")
    parser.add_argument("--rounds", type=int, default=10, help="plain/secured alternations")
    args = parser.parse_args(argv)
    # nats-py closing a TLS connection makes asyncio warn "returning true from
    # eof_received() has no effect when using ssl" once per client: not a finding.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        plain = NatsServer(Path(tmp) / "js").start()
        secured = [
            ("secured", SecuredNats(Path(tmp) / "secured").start()),
            ("auth only", SecuredNats(Path(tmp) / "auth", tls=False).start()),
        ]
        hosts = [HostProcess(plain, {"bench": "ctl"}, log=Path(tmp) / "host.log")]
        for _, server in secured:
            hosts.append(
                HostProcess(
                    server,  # type: ignore[arg-type]
                    {"bench": "ctl"},
                    *server.host_args(),
                    log=server.workdir / "host.log",
                )
            )
        try:
            peers = event_loop.run(run(plain, secured, args.requests, args.rounds))
        finally:
            for host in hosts:
                host.stop()
            plain.stop()
            for _, server in secured:
                server.stop()
    print(
        "secured: nats-server in operator mode with mutual TLS, host and client on their "
        "own users; auth only: the same without TLS; "
        f"{args.rounds} rounds alternating the three"
    )
    for peer in peers:
        print(line(f"{peer.label} host inventory", peer.host))
        print(line(f"{peer.label} bare NATS echo", peer.bare))
    plain_peer = peers[0]
    ok = True
    for peer in peers:
        ratio = percentile(peer.host, 50) / percentile(peer.bare, 50)
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
        ok = ok and ratio <= TARGET_RATIO
        print(
            f"{peer.label} host/bare at p50: {ratio:.2f}x (target < {TARGET_RATIO:g}x: {verdict})"
        )
    for peer in peers[1:]:
        for kind in ("host", "bare"):
            ratio = percentile(getattr(peer, kind), 50) / percentile(getattr(plain_peer, kind), 50)
            what = "host inventory" if kind == "host" else "bare NATS echo"
            target = ""
            if peer.label == "secured":  # the other is a diagnosis
                verdict = "ok" if ratio <= SECURED_TARGET else "OVER TARGET"
                ok = ok and ratio <= SECURED_TARGET
                target = f" (target <= {SECURED_TARGET:g}x: {verdict})"
            print(f"{peer.label}/plain {what} at p50: {ratio:.2f}x{target}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
