"""A lattice's private certificate authority and the certificates it issues, as PEM text.

Every NATS node of a lattice gets a server certificate (its client, route and leaf
listeners; the names and addresses others dial are its SANs) and every process that
connects (hosts, controller, providers, tooling) a client certificate: mutual TLS, so a
connection without a certificate from this CA never reaches NATS authentication at all.

Pure but for the key generation's randomness: the clock is an argument (``now``), so
expiry and rotation decisions are the caller's to time and the tests' to fix. Keys are
ECDSA P-256 (small, fast handshakes; nats-server and Python's ``ssl`` both take them) in
unencrypted PKCS#8, because the files they end up in are 0600 and owned by the service
user, and Pulumi state keeps them as secrets.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Self

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROTATION_WINDOW = timedelta(days=30)
# Certificates start a little before ``now``: a machine whose clock runs a few minutes
# behind the one that issued them must not refuse them as "not yet valid".
BACKDATE = timedelta(minutes=5)
RENEW_FIX = (
    "issue a new one from the lattice's CA (`pulumi up` renews certificates due within 30 days)"
)

_DNS_NAME = re.compile(r"(?=.{1,253}$)(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?)+")


class TlsError(ValueError):
    """A certificate or key that cannot be used; the message names the field and the fix."""


@dataclass(frozen=True)
class KeyPairPem:
    """A certificate and its private key, both PEM text (the key never in a repr)."""

    cert_pem: str
    key_pem: str = field(repr=False)

    def to_state(self) -> dict[str, str]:
        return {"certPem": self.cert_pem, "keyPem": self.key_pem}

    @classmethod
    def from_state(cls, state: object, field: str) -> Self:
        """Strictly read what ``to_state`` wrote: both PEM strings, parsed, and the key the
        certificate's. Says which of ``field``'s parts is wrong."""
        if not isinstance(state, Mapping):
            raise TlsError(
                f"{field} must be an object with certPem and keyPem, got {type(state).__name__}"
            )
        unknown = sorted(set(state) - {"certPem", "keyPem"})
        if unknown:
            raise TlsError(
                f"{field} has unknown fields {unknown}; it holds only certPem and keyPem"
            )
        values: dict[str, str] = {}
        for name in ("certPem", "keyPem"):
            value = state.get(name)
            if not isinstance(value, str):
                got = "nothing" if value is None else type(value).__name__
                raise TlsError(f"{field}.{name} must be a PEM string, got {got}")
            values[name] = value
        pair = cls(values["certPem"], values["keyPem"])
        _matching_key(pair, field)
        return pair


@dataclass(frozen=True)
class CertificateAuthority(KeyPairPem):
    """A lattice's private CA: a self-signed certificate that may sign only end-entity
    certificates (path length 0), and its key."""

    @classmethod
    def create(cls, common_name: str, *, now: datetime, days: int = 3650) -> CertificateAuthority:
        _check_name(common_name, "common_name")
        start = _aware(now, "now")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - BACKDATE)
            .not_valid_after(start + _days(days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(_cert_text(cert), _key_text(key))

    @classmethod
    def from_state(cls, state: object, field: str) -> Self:
        authority = super().from_state(state, field)
        cert = _load_cert(authority.cert_pem, f"{field}.certPem")
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TlsError(
                f"{field}.certPem is not a CA certificate (no basicConstraints CA:TRUE); "
                "give the lattice CA's certificate, not a server or client certificate"
            )
        return authority

    def issue_server(
        self,
        name: str,
        *,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        now: datetime,
        days: int = 365,
    ) -> KeyPairPem:
        """A certificate for a NATS node named ``name``. The SANs are what clients, routes
        and leaf nodes dial. It may also act as a TLS client, since a node dials its routes
        and leaf remotes with the same certificate."""
        _check_name(name, "name")
        if isinstance(dns_names, str) or isinstance(ip_addresses, str):
            raise TlsError("dns_names and ip_addresses must be lists of strings, not one string")
        sans: list[x509.GeneralName] = []
        for index, dns in enumerate(dns_names):
            if not isinstance(dns, str) or not _DNS_NAME.fullmatch(dns):
                raise TlsError(
                    f"dns_names[{index}] = {dns!r} is not a DNS name; give a host name such as "
                    "nats.example.com (addresses go in ip_addresses)"
                )
            sans.append(x509.DNSName(dns.rstrip(".").lower()))
        for index, ip in enumerate(ip_addresses):
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                raise TlsError(
                    f"ip_addresses[{index}] = {ip!r} is not an IP address; give one such as "
                    "10.0.0.4 or fd00::4 (host names go in dns_names)"
                ) from None
            sans.append(x509.IPAddress(address))
        if not sans:
            raise TlsError(
                f"the server certificate for {name!r} needs at least one DNS name or IP "
                "address: clients check the address they dial against them"
            )
        return self._issue(
            name,
            sans,
            (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
            now=now,
            days=days,
        )

    def issue_client(self, name: str, *, now: datetime, days: int = 365) -> KeyPairPem:
        """A client certificate (mutual TLS) for one process: a host, the controller, a
        provider or tooling. ``name`` is its subject's common name, shown in server logs."""
        _check_name(name, "name")
        return self._issue(name, [], (ExtendedKeyUsageOID.CLIENT_AUTH,), now=now, days=days)

    def _issue(
        self,
        name: str,
        sans: list[x509.GeneralName],
        usages: tuple[x509.ObjectIdentifier, ...],
        *,
        now: datetime,
        days: int,
    ) -> KeyPairPem:
        start = _aware(now, "now")
        ca_cert = _load_cert(self.cert_pem, "the CA certificate")
        ca_key = _load_key(self.key_pem, "the CA key")
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TlsError("the CA key is not an ECDSA key; recreate the lattice CA")
        end = min(start + _days(days), ca_cert.not_valid_after_utc)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - BACKDATE)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return KeyPairPem(_cert_text(builder.sign(ca_key, hashes.SHA256())), _key_text(key))


def expires_at(cert_pem: str, field: str = "certificate") -> datetime:
    """When the (first) certificate in ``cert_pem`` stops being valid, in UTC."""
    return _load_cert(cert_pem, field).not_valid_after_utc


def due_for_rotation(
    cert_pem: str, now: datetime, window: timedelta = ROTATION_WINDOW, field: str = "certificate"
) -> bool:
    """Whether the certificate expires within ``window`` of ``now`` (or already has): the
    rule ``pulumi up`` applies before reissuing."""
    return expires_at(cert_pem, field) <= _aware(now, "now") + window


def subject_alt_names(
    cert_pem: str, field: str = "certificate"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The certificate's DNS names and IP addresses (as text), e.g. to reissue a node's
    certificate when its addresses changed."""
    cert = _load_cert(cert_pem, field)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    return (
        tuple(sans.get_values_for_type(x509.DNSName)),
        tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress)),
    )


def check_pair(pair: KeyPairPem, ca_pem: str, field: str, now: datetime) -> None:
    """Refuse, naming ``field`` and the fix, a pair a TLS peer would refuse: text that is
    not PEM, a key that is not the certificate's, a certificate not signed by (any CA
    certificate in) ``ca_pem``, one not yet valid or expired at ``now``."""
    at = _aware(now, "now")
    cert = _load_cert(pair.cert_pem, f"{field}.cert_pem")
    _matching_key(pair, field)
    authorities = _load_certs(ca_pem, f"{field}: the CA bundle")
    if not any(_signed_by(cert, ca) for ca in authorities):
        raise TlsError(
            f"{field}.cert_pem (subject {cert.subject.rfc4514_string()!r}, issuer "
            f"{cert.issuer.rfc4514_string()!r}) is not signed by the lattice's CA; "
            f"{RENEW_FIX}, or give the CA certificate that signed it"
        )
    if at < cert.not_valid_before_utc:
        raise TlsError(
            f"{field}.cert_pem is not valid before {_when(cert.not_valid_before_utc)} (now "
            f"{_when(at)}); check this machine's clock, or {RENEW_FIX}"
        )
    if at >= cert.not_valid_after_utc:
        raise TlsError(
            f"{field}.cert_pem expired at {_when(cert.not_valid_after_utc)}; {RENEW_FIX}"
        )


def check_cert_and_key(pair: KeyPairPem, field: str) -> None:
    """Refuse, naming ``field``, a pair whose texts are not PEM or whose key is not the
    certificate's (what ``check_pair`` checks, without a CA or a clock)."""
    _matching_key(pair, field)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _matching_key(pair: KeyPairPem, field: str) -> None:
    cert = _load_cert(pair.cert_pem, f"{field}.cert_pem")
    key = _load_key(pair.key_pem, f"{field}.key_pem")
    if cert.public_key() != key.public_key():
        raise TlsError(
            f"{field}.key_pem is not the private key of {field}.cert_pem (subject "
            f"{cert.subject.rfc4514_string()!r}); give the key file issued with this "
            "certificate"
        )


def _load_cert(text: object, field: str) -> x509.Certificate:
    return _load_certs(text, field)[0]


def _load_certs(text: object, field: str) -> list[x509.Certificate]:
    if not isinstance(text, str):
        raise TlsError(f"{field} must be PEM text, got {type(text).__name__}")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise TlsError(
            f"{field} is not a PEM certificate; give the text of the .pem/.crt file, "
            "starting with -----BEGIN CERTIFICATE-----"
        )
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise TlsError(
            f"{field} has a -----BEGIN CERTIFICATE----- block that does not parse; give "
            "the whole certificate file, unchanged"
        ) from None


def _load_key(text: object, field: str) -> CertificateIssuerPrivateKeyTypes:
    # The key's text never goes into an error message: only which field is wrong.
    if not isinstance(text, str):
        raise TlsError(f"{field} must be PEM text, got {type(text).__name__}")
    if "PRIVATE KEY-----" not in text:
        raise TlsError(
            f"{field} is not a PEM private key; give the key file issued with the "
            "certificate (starting with -----BEGIN PRIVATE KEY-----)"
        )
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise TlsError(
            f"{field} does not parse as an unencrypted PEM private key; give the key file "
            "issued with the certificate, unchanged and without a passphrase"
        ) from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise TlsError(f"{field} is a {type(key).__name__}, which cannot be used for TLS")
    return key


def _check_name(name: object, field: str) -> None:
    if not isinstance(name, str) or not name.strip() or any(ord(c) < 32 for c in name):
        raise TlsError(f"{field} must be a non-empty name without control characters, got {name!r}")
    if len(name) > 64:
        raise TlsError(
            f"{field} {name!r} is longer than 64 characters (X.509's limit for a common name)"
        )


def _aware(when: object, field: str) -> datetime:
    if not isinstance(when, datetime):
        raise TlsError(f"{field} must be a datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise TlsError(
            f"{field} must be timezone-aware (e.g. datetime.now(UTC)), got a naive datetime"
        )
    return when


def _days(days: object) -> timedelta:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise TlsError(f"days must be a whole number of days, at least 1, got {days!r}")
    return timedelta(days=days)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cert_text(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_text(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
