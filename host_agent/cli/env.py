"""Options read from the environment, shared by the host and controller commands.

Like every boundary here, a value that does not parse is refused with the variable's name
and what to write instead; it is never read as the default (``WASMCLOUD_CTL_TLS=ture``
must not quietly mean "no TLS").
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # host/artifacts.py reads switches here too; it needs no nats-py
    from host_agent.lattice.connection import ClientTls

# Upstream's host flag is --tls-ca-path; the variables are ours, the same names as
# host_agent/lattice/connection.py uses in its messages.
CA_PATH_ENV = "WASMCLOUD_TLS_CA_PATH"
CLIENT_CERT_ENV = "WASMCLOUD_NATS_TLS_CERT"
CLIENT_KEY_ENV = "WASMCLOUD_NATS_TLS_KEY"

T = TypeVar("T", int, float)

# The spellings clap's boolish parser (the real host's) takes, and unset or empty as false.
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off", "n"})


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no switch: true, false (or 1/0, yes/no, on/off); unset or empty is false."""
    text = env.get(name, "")
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={text!r}: expected true or false (or 1/0, yes/no, on/off)")


def env_number(env: Mapping[str, str], name: str, default: str, kind: type[T]) -> T:
    """A number from the environment (``default`` when unset), refused by name when it is
    not one."""
    text = env.get(name, default)
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}={text!r}: expected {what}") from None
    if not math.isfinite(value):  # float() takes "inf" and "nan"; no setting means those
        raise ValueError(f"{name}={text!r}: expected a finite number")
    return value


def finite_float(text: str) -> float:
    """argparse type for seconds and sizes: a number, but not inf or nan (which float()
    takes and which would mean "never" or compare false everywhere)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def env_optional_number(env: Mapping[str, str], name: str, kind: type[T]) -> T | None:
    """Like ``env_number``, but unset or empty means "not given" (None)."""
    if not env.get(name, "").strip():
        return None
    return env_number(env, name, "", kind)


def add_tls_options(
    p: argparse.ArgumentParser,
    env: Mapping[str, str],
    ca_flags: Sequence[str] = ("--tls-ca-path",),
    ca_env: Sequence[str] = (CA_PATH_ENV,),
) -> None:
    """TLS towards NATS: the CA file(s) (the host's ``--tls-ca-path``, repeatable) and the
    client certificate and key of mutual TLS. Paths only: a key never rides in argv.
    ``ca_flags``/``ca_env``: the CA's spellings (wadm's ``--nats-tls-ca-file``, say)."""
    p.add_argument(
        *ca_flags,
        dest="tls_ca_path",
        action="append",
        default=None,
        metavar="FILE",
        help="CA certificate(s) (PEM) the NATS server's certificate must chain to, "
        f"repeatable; turns TLS on (env {' or '.join(ca_env)}, one file)",
    )
    p.add_argument(
        "--nats-tls-cert",
        default=env.get(CLIENT_CERT_ENV) or None,
        metavar="FILE",
        help=f"client certificate (PEM) for mutual TLS with NATS (env {CLIENT_CERT_ENV})",
    )
    p.add_argument(
        "--nats-tls-key",
        default=env.get(CLIENT_KEY_ENV) or None,
        metavar="FILE",
        help=f"the client certificate's private key file (PEM; env {CLIENT_KEY_ENV})",
    )


def client_tls(
    args: argparse.Namespace, env: Mapping[str, str], ca_env: Sequence[str] = (CA_PATH_ENV,)
) -> ClientTls | None:
    """The TLS settings ``add_tls_options`` read (the files loaded and checked), or None
    when none were given. ``ca_env``: the variables naming a CA file, first set wins."""
    from host_agent.lattice.connection import ClientTls, TlsConfigError

    ca_paths = args.tls_ca_path or [env[n] for n in ca_env if env.get(n)][:1]
    cert, key = args.nats_tls_cert, args.nats_tls_key
    if not ca_paths and cert is None and key is None:
        return None
    if not ca_paths:
        raise TlsConfigError(
            "a TLS client certificate needs the CA that signed the NATS server's certificate "
            f"too: give --tls-ca-path or {CA_PATH_ENV}"
        )
    return ClientTls.from_files(ca_paths, cert, key)
