"""Test helpers for a secured lattice on machines: connect as its tooling user over mutual
TLS (what its ``credentials`` and ``clientTls`` outputs give), check that anonymous and
certificate-less clients are refused, read the certificate a node serves, and find
private material where none may be (process lists, logs, provider messages)."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
from cryptography import x509
from nats.aio.client import RawCredentials

from host_agent.lattice.connection import ClientTls

# An nkey seed (operator, account, user, server, curve...: S + its kind + base32) or a
# PEM private key: neither may show outside Pulumi's secrets and the machines' 0600 files.
SEED = re.compile(r"\bS[OAUNCPX][A-Z2-7]{54,}\b")
PRIVATE_KEY = "PRIVATE KEY"


def leaks(text: str) -> list[str]:
    """Every seed or private key marker in ``text`` (shortened: a report must not print
    a secret whole)."""
    found = [f"{m.group(0)[:4]}... (a seed)" for m in SEED.finditer(text)]
    if PRIVATE_KEY in text:
        found.append("a PEM private key")
    return found


def client_tls(state: Mapping[str, Any]) -> ssl.SSLContext:
    tls = state["clientTls"]
    return ClientTls(str(tls["caPem"]), str(tls["certPem"]), str(tls["keyPem"])).context()


def client_options(state: Mapping[str, Any]) -> dict[str, Any]:
    """nats.connect options to reach a secured lattice as its tooling user."""
    return {
        "user_credentials": RawCredentials(str(state["credentials"])),
        "tls": client_tls(state),
    }


async def refusal(url: str, **options: Any) -> str:
    """Why a connection to ``url`` with ``options`` was refused ("" if it was not)."""
    errors: list[str] = []

    async def record(error: Exception) -> None:
        errors.append(f"{type(error).__name__}: {error}")

    try:
        nc = await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=3,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=record,
                **options,
            ),
            timeout=15,
        )
    except Exception as error:  # what a user would see; any kind is a refusal here
        return f"{type(error).__name__}: {error}; " + "; ".join(errors)
    await nc.close()
    return ""


def plaintext_refusal(url: str) -> str:
    """What the node at ``url`` answers a client that connects without TLS and without a
    user (a CONNECT in the clear, then PING): its -ERR line ("" if it answered PONG)."""
    host, _, port = url.removeprefix("nats://").rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as raw:
        answer = b""
        while not answer.endswith(b"\r\n"):
            chunk = raw.recv(4096)
            assert chunk, f"{url} closed before its INFO line"
            answer += chunk
        raw.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        said = b""
        while b"\r\n" not in said:
            chunk = raw.recv(4096)
            if not chunk:
                break
            said += chunk
    line = said.decode(errors="replace").strip()
    return "" if line.startswith("PONG") else line or "closed without a word"


async def refusals(url: str, state: Mapping[str, Any]) -> dict[str, str]:
    """How the node at ``url`` answers a client with nothing (no TLS, no user), with the
    lattice's CA and a user but no client certificate, and with a client certificate but
    no user."""
    no_client_cert = ssl.create_default_context(cadata=str(state["clientTls"]["caPem"]))
    return {
        "anonymous": await asyncio.to_thread(plaintext_refusal, url),
        "no client certificate": await refusal(
            url, tls=no_client_cert, user_credentials=RawCredentials(str(state["credentials"]))
        ),
        "no user": await refusal(url, tls=client_tls(state)),
    }


def served_certificate(
    address: str, state: Mapping[str, Any], port: int = 4222
) -> x509.Certificate:
    """The certificate the NATS node at ``address`` serves now: its INFO line comes in
    the clear, then the client starts TLS (as every NATS client does)."""
    context = client_tls(state)
    with socket.create_connection((address, port), timeout=10) as raw:
        info = b""
        while not info.endswith(b"\r\n"):
            chunk = raw.recv(4096)
            assert chunk, f"{address}:{port} closed before its INFO line"
            info += chunk
        assert info.startswith(b"INFO ") and b'"tls_required":true' in info, info[:200]
        with context.wrap_socket(raw, server_hostname=address) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def machine_leaks(machine: Any) -> dict[str, list[str]]:
    """Private material where it must not be on a test machine (tests/machines.py):
    its process list (``ps -eo args``: every user reads it), our logs, and sshd's log
    of the sessions we opened. Where -> what was found; empty when clean."""
    found: dict[str, list[str]] = {}
    args = "\n".join(machine.processes().values())
    logs = machine.inside(["sh", "-c", "cat /var/log/wasmcloud/*.log 2>/dev/null; true"]).stdout
    for where, text in (("ps -eo args", args), ("/var/log/wasmcloud", logs)):
        said = leaks(text)
        if said:
            found[where] = said
    said = leaks(machine.sshd_log())
    if said:
        found["sshd log"] = said
    return found


def secret_files(machine: Any) -> dict[str, str]:
    """Each file of ours in /etc/wasmcloud: its mode and owner (``600 root``)."""
    listed = machine.inside(
        ["sh", "-c", "for f in /etc/wasmcloud/*; do stat -c '%n %a %U' \"$f\"; done"]
    )
    assert listed.returncode == 0, listed.stderr
    return {line.split()[0]: " ".join(line.split()[1:]) for line in listed.stdout.splitlines()}
