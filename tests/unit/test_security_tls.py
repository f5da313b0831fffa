"""The lattice CA and its certificates: what OpenSSL (Python's ssl) accepts in a real
handshake, and the errors a user sees for a pair that would be refused."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from host_agent.cli.controller import CONTROLLER_CA_ENV
from host_agent.cli.env import client_tls
from host_agent.lattice.connection import ClientTls, TlsConfigError
from host_agent.providers.contract import HostData
from host_agent.providers.sdk import rpc_tls
from host_agent.security.tls import (
    CertificateAuthority,
    KeyPairPem,
    TlsError,
    check_pair,
    due_for_rotation,
    expires_at,
    subject_alt_names,
)

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("lattice-a CA", now=NOW)


@pytest.fixture(scope="module")
def other_ca() -> CertificateAuthority:
    return CertificateAuthority.create("lattice-b CA", now=NOW)


@pytest.fixture(scope="module")
def server(ca: CertificateAuthority) -> KeyPairPem:
    return ca.issue_server(
        "nats-1", dns_names=["nats-1.example.com"], ip_addresses=["127.0.0.1", "fd00::4"], now=NOW
    )


@pytest.fixture(scope="module")
def client(ca: CertificateAuthority) -> KeyPairPem:
    return ca.issue_client("host-1", now=NOW)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def handshake(
    tmp_path: Path,
    *,
    server: KeyPairPem,
    server_trusts: str,
    client_trusts: str,
    hostname: str,
    client: KeyPairPem | None,
) -> None:
    """A TLS handshake between Python's OpenSSL client and server over memory buffers:
    raises ssl.SSLError as a real peer would refuse."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(
        _write(tmp_path, "s.pem", server.cert_pem), _write(tmp_path, "s.key", server.key_pem)
    )
    server_context.load_verify_locations(cadata=server_trusts)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cadata=client_trusts)
    if client is not None:
        client_context.load_cert_chain(
            _write(tmp_path, "c.pem", client.cert_pem), _write(tmp_path, "c.key", client.key_pem)
        )
    buffers = [ssl.MemoryBIO() for _ in range(4)]
    client_end = client_context.wrap_bio(buffers[0], buffers[1], server_hostname=hostname)
    server_end = server_context.wrap_bio(buffers[1], buffers[0], server_side=True)
    # Each side's outgoing buffer is the other's incoming one: step both until done.
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, end in (("client", client_end), ("server", server_end)):
            if done[name]:
                continue
            try:
                end.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        if all(done.values()):
            break
    assert all(done.values()), "the handshake did not finish"
    # TLS 1.3 servers judge the client certificate after the client finished: read once.
    server_end.write(b"ping")
    assert client_end.read(4) == b"ping"
    client_end.write(b"pong")
    assert server_end.read(4) == b"pong"


def test_server_and_client_certificates_pass_a_real_mutual_tls_handshake(
    tmp_path: Path, ca: CertificateAuthority, server: KeyPairPem, client: KeyPairPem
) -> None:
    for hostname in ("nats-1.example.com", "127.0.0.1", "fd00::4"):
        handshake(
            tmp_path,
            server=server,
            server_trusts=ca.cert_pem,
            client_trusts=ca.cert_pem,
            hostname=hostname,
            client=client,
        )


def test_a_client_dialling_a_name_not_in_the_sans_is_refused(
    tmp_path: Path, ca: CertificateAuthority, server: KeyPairPem, client: KeyPairPem
) -> None:
    with pytest.raises(
        ssl.SSLCertVerificationError, match=r"Hostname mismatch|IP address mismatch"
    ):
        handshake(
            tmp_path,
            server=server,
            server_trusts=ca.cert_pem,
            client_trusts=ca.cert_pem,
            hostname="10.9.9.9",
            client=client,
        )


def test_the_server_refuses_no_client_certificate_and_one_from_another_ca(
    tmp_path: Path,
    ca: CertificateAuthority,
    other_ca: CertificateAuthority,
    server: KeyPairPem,
    client: KeyPairPem,
) -> None:
    strangers = [
        (None, "CERTIFICATE_REQUIRED|PEER_DID_NOT_RETURN_A_CERTIFICATE"),
        (other_ca.issue_client("intruder", now=NOW), "UNKNOWN_CA|CERTIFICATE_VERIFY_FAILED"),
    ]
    for stranger, reason in strangers:
        with pytest.raises(ssl.SSLError, match=reason):
            handshake(
                tmp_path,
                server=server,
                server_trusts=ca.cert_pem,
                client_trusts=ca.cert_pem,
                hostname="127.0.0.1",
                client=stranger,
            )


def test_a_client_refuses_a_server_from_another_ca(
    tmp_path: Path, other_ca: CertificateAuthority, ca: CertificateAuthority, client: KeyPairPem
) -> None:
    impostor = other_ca.issue_server("nats-1", dns_names=[], ip_addresses=["127.0.0.1"], now=NOW)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(
            tmp_path,
            server=impostor,
            server_trusts=ca.cert_pem,
            client_trusts=ca.cert_pem,
            hostname="127.0.0.1",
            client=client,
        )


def test_a_bundle_of_old_and_new_ca_trusts_both_during_a_ca_rotation(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority, server: KeyPairPem
) -> None:
    bundle = ca.cert_pem + other_ca.cert_pem
    for issuer in (ca, other_ca):
        pair = issuer.issue_client("host-2", now=NOW)
        check_pair(pair, bundle, "host.tls", NOW)
        handshake(
            tmp_path,
            server=server,
            server_trusts=bundle,
            client_trusts=ca.cert_pem,
            hostname="127.0.0.1",
            client=pair,
        )


def test_server_certificate_names_and_lifetimes(
    ca: CertificateAuthority, server: KeyPairPem
) -> None:
    assert subject_alt_names(server.cert_pem) == (("nats-1.example.com",), ("127.0.0.1", "fd00::4"))
    assert expires_at(server.cert_pem) == NOW + timedelta(days=365)
    assert expires_at(ca.cert_pem) == NOW + timedelta(days=3650)
    # A certificate never outlives the CA that signed it.
    short_ca = CertificateAuthority.create("short", now=NOW, days=10)
    assert expires_at(short_ca.issue_client("x", now=NOW).cert_pem) == NOW + timedelta(days=10)


def test_rotation_is_due_within_thirty_days_of_expiry(server: KeyPairPem) -> None:
    expiry = NOW + timedelta(days=365)
    assert not due_for_rotation(server.cert_pem, NOW)
    assert not due_for_rotation(server.cert_pem, expiry - timedelta(days=30, seconds=1))
    assert due_for_rotation(server.cert_pem, expiry - timedelta(days=30))
    assert due_for_rotation(server.cert_pem, expiry + timedelta(days=1))
    assert due_for_rotation(server.cert_pem, NOW, window=timedelta(days=400))


def test_check_pair_accepts_what_the_ca_issued(
    ca: CertificateAuthority, server: KeyPairPem, client: KeyPairPem
) -> None:
    check_pair(server, ca.cert_pem, "nats.tls", NOW)
    check_pair(client, ca.cert_pem, "host.tls", NOW + timedelta(days=364))


def test_check_pair_names_the_field_and_the_fix(
    ca: CertificateAuthority,
    other_ca: CertificateAuthority,
    server: KeyPairPem,
    client: KeyPairPem,
) -> None:
    def refused(pair: KeyPairPem, now: datetime = NOW, ca_pem: str = ca.cert_pem) -> str:
        with pytest.raises(TlsError) as error:
            check_pair(pair, ca_pem, "host.tls", now)
        message = str(error.value)
        assert "host.tls" in message
        secret_lines = [line for line in pair.key_pem.splitlines() if "-----" not in line]
        assert not any(line in message for line in secret_lines if len(line) > 8)
        return message

    assert "expired at" in refused(client, NOW + timedelta(days=366))
    assert "renews certificates" in refused(client, NOW + timedelta(days=366))
    assert "not valid before" in refused(client, NOW - timedelta(days=1))
    assert "clock" in refused(client, NOW - timedelta(days=1))
    assert "not signed by the lattice's CA" in refused(other_ca.issue_client("host-1", now=NOW))
    assert "not signed" in refused(client, ca_pem=other_ca.cert_pem)
    message = refused(KeyPairPem(client.cert_pem, server.key_pem))
    assert "host.tls.key_pem is not the private key of host.tls.cert_pem" in message
    assert "host.tls.cert_pem is not a PEM certificate" in refused(
        KeyPairPem("hello", client.key_pem)
    )
    assert "host.tls.key_pem is not a PEM private key" in refused(KeyPairPem(client.cert_pem, "x"))
    broken_key = client.key_pem.replace(client.key_pem.splitlines()[1], "AAAA")
    assert "does not parse" in refused(KeyPairPem(client.cert_pem, broken_key))
    broken_cert = client.cert_pem.replace(client.cert_pem.splitlines()[2], "AAAA")
    assert "does not parse" in refused(KeyPairPem(broken_cert, client.key_pem))


def test_bad_names_and_clocks_are_refused_with_their_names(ca: CertificateAuthority) -> None:
    cases: list[tuple[Callable[[], Any], str]] = [
        (
            lambda: ca.issue_server("n", dns_names=[], ip_addresses=["300.1.1.1"], now=NOW),
            "ip_addresses[0]",
        ),
        (lambda: ca.issue_server("n", dns_names=["a b"], ip_addresses=[], now=NOW), "dns_names[0]"),
        (
            lambda: ca.issue_server("n", dns_names=["10.0.0.1/8"], ip_addresses=[], now=NOW),
            "dns_names[0]",
        ),
        (lambda: ca.issue_server("n", dns_names=[], ip_addresses=[], now=NOW), "at least one"),
        (
            lambda: ca.issue_server("n", dns_names="a.b", ip_addresses=[], now=NOW),
            "lists of strings",
        ),
        (lambda: ca.issue_client("", now=NOW), "name must be"),
        (lambda: ca.issue_client("h", now=datetime(2026, 1, 1)), "timezone-aware"),
        (lambda: ca.issue_client("h", now=NOW, days=0), "days"),
        (lambda: CertificateAuthority.create("c", now=NOW, days=True), "days"),
        (lambda: expires_at("nope", field="caCert"), "caCert is not a PEM certificate"),
    ]
    for call, expected in cases:
        with pytest.raises(TlsError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            call()


def test_state_round_trip_is_strict_and_keys_stay_out_of_reprs(
    ca: CertificateAuthority, client: KeyPairPem
) -> None:
    assert CertificateAuthority.from_state(ca.to_state(), "lattice.ca") == ca
    assert KeyPairPem.from_state(client.to_state(), "host.tls") == client
    assert "PRIVATE" not in repr(ca) and "PRIVATE" not in repr(client)
    bad = [
        ("text", "lattice.ca must be an object"),
        ({"certPem": ca.cert_pem}, r"lattice.ca.keyPem must be a PEM string, got nothing"),
        ({"certPem": 1, "keyPem": ca.key_pem}, "lattice.ca.certPem must be a PEM string, got int"),
        ({**ca.to_state(), "extra": "x"}, r"unknown fields \['extra'\]"),
        ({"certPem": ca.cert_pem, "keyPem": client.key_pem}, "is not the private key"),
        (client.to_state(), "lattice.ca.certPem is not a CA certificate"),
    ]
    for state, expected in bad:
        with pytest.raises(TlsError, match=expected):
            CertificateAuthority.from_state(state, "lattice.ca")


# ClientTls: what every process (host, controller, providers, tooling) connects with.


def test_client_tls_reads_its_files_and_keeps_the_key_out_of_reprs(
    tmp_path: Path, ca: CertificateAuthority, client: KeyPairPem
) -> None:
    ca_file = Path(_write(tmp_path, "ca.pem", ca.cert_pem))
    cert_file, key_file = (
        _write(tmp_path, "c.pem", client.cert_pem),
        _write(tmp_path, "c.key", client.key_pem),
    )
    tls = ClientTls.from_files([ca_file], cert_file, key_file)
    assert tls == ClientTls(ca.cert_pem, client.cert_pem, client.key_pem)
    assert "PRIVATE" not in repr(tls)
    context = tls.context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # Only the CA: TLS without a client certificate.
    assert ClientTls.from_files([ca_file]) == ClientTls(ca.cert_pem)


def test_client_tls_refuses_files_that_cannot_work_naming_them(
    tmp_path: Path, ca: CertificateAuthority, client: KeyPairPem, server: KeyPairPem
) -> None:
    ca_file = _write(tmp_path, "ca.pem", ca.cert_pem)
    cert_file = _write(tmp_path, "c.pem", client.cert_pem)
    other_key = _write(tmp_path, "other.key", server.key_pem)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: ClientTls.from_files([]), "--tls-ca-path or WASMCLOUD_TLS_CA_PATH"),
        (lambda: ClientTls.from_files([tmp_path / "none.pem"]), "cannot read the TLS CA file"),
        (lambda: ClientTls.from_files([cert_file], cert_file), "needs its key"),
        (lambda: ClientTls.from_files([Path(other_key)]), "is not a PEM certificate"),
        (lambda: ClientTls.from_files([ca_file], cert_file, other_key), "is not the private key"),
        (lambda: ClientTls.from_files([ca_file], other_key, other_key), "is not a PEM certificate"),
        (lambda: ClientTls("not a certificate"), "BEGIN CERTIFICATE"),
        (lambda: ClientTls(ca.cert_pem, client.cert_pem), "needs its key"),
    ]
    for call, expected in cases:
        with pytest.raises(TlsConfigError, match=re.escape(expected)) as error:
            call()
        assert "PRIVATE KEY-----" not in str(error.value).replace("BEGIN PRIVATE KEY-----)", "")


def test_the_client_key_is_never_written_to_disk(
    ca: CertificateAuthority, client: KeyPairPem, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ssl loads a key only from a file: the file must be anonymous memory, not a path
    # on a disk (where a crash or a backup could leave the key behind).
    loaded: list[str] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, keyfile: str | None = None, **kw: Any) -> None:
        loaded.extend(os.path.realpath(path) for path in (certfile, keyfile or certfile))
        original(self, certfile, keyfile, **kw)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    ClientTls(ca.cert_pem, client.cert_pem, client.key_pem).context()
    assert len(loaded) == 2
    assert all(path.startswith("/memfd:") for path in loaded), loaded


def test_the_host_and_controller_flags_give_a_client_tls(
    tmp_path: Path, ca: CertificateAuthority, client: KeyPairPem
) -> None:
    from host_agent.cli import controller, host

    ca_file = _write(tmp_path, "ca.pem", ca.cert_pem)
    cert_file, key_file = (
        _write(tmp_path, "c.pem", client.cert_pem),
        _write(tmp_path, "c.key", client.key_pem),
    )
    env = {"WASMCLOUD_NATS_TLS_CERT": cert_file, "WASMCLOUD_NATS_TLS_KEY": key_file}
    expected = ClientTls(ca.cert_pem, client.cert_pem, client.key_pem)
    args = host.build_parser(env).parse_args(["--tls-ca-path", ca_file])
    assert client_tls(args, env) == expected
    args = host.build_parser({}).parse_args([])
    assert client_tls(args, {"WASMCLOUD_TLS_CA_PATH": ca_file}) == ClientTls(ca.cert_pem)
    assert client_tls(args, {}) is None
    args = controller.build_parser(env).parse_args([])
    assert (
        client_tls(args, {**env, "WADM_NATS_TLS_CA_FILE": ca_file}, CONTROLLER_CA_ENV) == expected
    )
    args = controller.build_parser(env).parse_args(["--nats-tls-ca-file", ca_file])
    assert client_tls(args, env, CONTROLLER_CA_ENV) == expected
    with pytest.raises(TlsConfigError, match="give --tls-ca-path or WASMCLOUD_TLS_CA_PATH"):
        client_tls(host.build_parser(env).parse_args([]), env)


def test_providers_get_the_hosts_tls_in_host_data(
    ca: CertificateAuthority, client: KeyPairPem
) -> None:
    base = {
        "host_id": "NHOST",
        "lattice_rpc_prefix": "default",
        "lattice_rpc_url": "nats://127.0.0.1:4222",
        "provider_key": "VPROV",
        "instance_id": "i",
    }
    data = HostData.model_validate(
        {
            **base,
            "lattice_rpc_tls_ca_pem": ca.cert_pem,
            "lattice_rpc_tls_cert_pem": client.cert_pem,
            "lattice_rpc_tls_key_pem": client.key_pem,
        }
    )
    assert "PRIVATE" not in repr(data)
    assert rpc_tls(HostData.decode(data.encode())) == ClientTls(
        ca.cert_pem, client.cert_pem, client.key_pem
    )
    assert rpc_tls(HostData.model_validate(base)) is None
    with pytest.raises(TlsConfigError, match="lattice_rpc_tls_ca_pem"):
        rpc_tls(HostData.model_validate({**base, "lattice_rpc_tls_cert_pem": client.cert_pem}))
    with pytest.raises(TlsConfigError, match="must both be given"):
        rpc_tls(
            HostData.model_validate(
                {**base, "lattice_rpc_tls_ca_pem": ca.cert_pem, "lattice_rpc_tls_key_pem": "k"}
            )
        )
