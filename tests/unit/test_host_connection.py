"""Where a host connects and as whom: NATS URLs and credentials parsed strictly, secrets
kept out of reprs, command lines and resource state, and the host's options as a user
gives them (environment variables like the real wasmCloud host)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nkeys
import pytest

from host_agent.cli.host import build_parser, nats_address, nats_credentials
from host_agent.host.identity import HostIdentity
from host_agent.host.process import HostConfig
from host_agent.lattice.connection import (
    AddressError,
    CredentialsError,
    NatsAddress,
    NatsCredentials,
)
from host_agent.providers.contract import HostData
from pulumi_wasmcloud.provider.host_resource import HostResource, host_command, host_environment
from tests.nats_auth import operator_auth


def user() -> NatsCredentials:
    return NatsCredentials.from_creds(operator_auth(4222, "/nonexistent").creds)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("nats://198.18.0.2:4222", NatsAddress("198.18.0.2", 4222)),
        ("tls://nats.example.com:7422", NatsAddress("nats.example.com", 7422, tls=True)),
        ("nats://nats.example.com", NatsAddress("nats.example.com", 4222)),
        ("nats://[::1]:4223/", NatsAddress("::1", 4223)),
    ],
)
def test_a_nats_url_names_one_server_and_whether_it_needs_tls(
    url: str, address: NatsAddress
) -> None:
    assert NatsAddress.parse(url) == address
    assert NatsAddress.parse(address.url) == address  # the URL handed on means the same


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (4222, "expected a string"),
        ("127.0.0.1:4222", "has no scheme"),
        ("http://127.0.0.1:4222", "scheme 'http' is not supported; use nats:// or tls://"),
        ("nats://a:4222,nats://b:4222", "lists several servers"),
        ("nats://app:pw@127.0.0.1:4222", "wasmcloud:credentials"),
        ("nats://127.0.0.1:notaport", "is not a valid URL"),
        ("nats://127.0.0.1:70000", "is not a valid URL"),
        ("nats://:4222", "names no host"),
        ("nats://127.0.0.1:4222/lattice", "no path, query or fragment"),
        # Refused for another reason first, still without the password.
        ("nats://app:pw@a:4222,nats://b:4222", "lists several servers"),
        ("app:pw@127.0.0.1:4222", "has no scheme"),
        ("nats://app:pw@127.0.0.1:notaport", "is not a valid URL"),
        ("http://app:pw@127.0.0.1:4222", "scheme 'http' is not supported"),
    ],
)
def test_a_bad_nats_url_is_refused_saying_what_to_write(url: object, said: str) -> None:
    with pytest.raises(AddressError) as refused:
        NatsAddress.parse(url)
    assert said in str(refused.value)
    assert "pw" not in str(refused.value)  # a password in the URL is not repeated


def test_creds_text_gives_the_user_and_the_seed_stays_out_of_reprs() -> None:
    credentials = user()
    assert credentials.seed.startswith("SU") and credentials.jwt.count(".") == 2
    assert credentials.seed not in repr(credentials)
    assert NatsCredentials.from_creds(credentials.creds()) == credentials
    host_data = HostData(
        host_id="N",
        lattice_rpc_prefix="default",
        lattice_rpc_url="nats://127.0.0.1:4222",
        lattice_rpc_user_jwt=credentials.jwt,
        lattice_rpc_user_seed=credentials.seed,
        provider_key="p",
        instance_id="i",
    )
    assert credentials.seed not in repr(host_data)
    assert HostData.decode(host_data.encode()).lattice_rpc_user_seed == credentials.seed


def test_bad_credentials_are_refused_naming_the_fix() -> None:
    credentials = user()
    with pytest.raises(CredentialsError, match="has no BEGIN NATS USER JWT block"):
        NatsCredentials.from_creds("just some text", "wasmcloud:credentials")
    other = nkeys.from_seed(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))
    with pytest.raises(CredentialsError, match=r"must come from the same \.creds file"):
        NatsCredentials(credentials.jwt, other.seed.decode())
    server_seed = HostIdentity.generate().seed
    with pytest.raises(CredentialsError, match="user nkey seed starting with 'SU'"):
        NatsCredentials(credentials.jwt, server_seed)
    with pytest.raises(CredentialsError, match="not a JWT"):
        NatsCredentials("not-a-jwt", credentials.seed)


def test_a_host_identity_repr_has_no_seed() -> None:
    identity = HostIdentity.generate("edge-1")
    assert identity.seed.startswith("SN")
    assert identity.seed not in repr(identity) and identity.public_key in repr(identity)
    assert identity.seed not in str(identity)
    config = HostConfig(seed=identity.seed, credentials=user())
    assert identity.seed not in repr(config) and config.credentials is not None
    assert config.credentials.seed not in repr(config)


def options(*argv: str, **env: str) -> tuple[argparse.Namespace, dict[str, str]]:
    return build_parser(env).parse_args(argv), env


def test_host_options_take_the_nats_user_like_the_real_host(tmp_path: Path) -> None:
    credentials = user()
    args, env = options(
        WASMCLOUD_NATS_HOST="198.18.0.2",
        WASMCLOUD_NATS_PORT="4300",
        WASMCLOUD_RPC_TLS="true",
        WASMCLOUD_NATS_JWT=credentials.jwt,
        WASMCLOUD_NATS_SEED=credentials.seed,
    )
    assert nats_address(args, env).url == "tls://198.18.0.2:4300"
    assert nats_credentials(args, env) == (credentials, None)

    args, env = options(WASMCLOUD_NATS_JWT=credentials.jwt)
    with pytest.raises(CredentialsError, match="needs both its JWT"):
        nats_credentials(args, env)
    args, env = options(
        "--nats-creds", "/x.creds", WASMCLOUD_NATS_JWT=credentials.jwt, WASMCLOUD_NATS_SEED="SU"
    )
    with pytest.raises(CredentialsError, match="not both"):
        nats_credentials(args, env)
    creds = tmp_path / "user.creds"
    creds.write_text(credentials.creds())
    args, env = options(WASMCLOUD_NATS_CREDS=str(creds))
    assert nats_credentials(args, env) == (credentials, str(creds))
    args, env = options("--nats-creds", str(tmp_path / "missing.creds"))
    with pytest.raises(CredentialsError, match="cannot read NATS creds file"):
        nats_credentials(args, env)
    args, env = options(WASMCLOUD_NATS_PORT="42x")
    with pytest.raises(ValueError, match="WASMCLOUD_NATS_PORT='42x': expected a whole number"):
        nats_address(args, env)


def test_a_seed_given_as_a_flag_is_warned_about() -> None:
    seed = HostIdentity.generate().seed
    done = subprocess.run(
        [sys.executable, "-m", "host_agent", "--host-seed", seed, "--nats-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "--host-seed puts a secret on the command line" in done.stderr
    assert "set WASMCLOUD_HOST_SEED instead" in done.stderr
    assert done.returncode == 2 and "NATS port 0 is out of range" in done.stderr


def test_the_host_command_line_carries_no_secret_and_the_environment_says_it_all() -> None:
    credentials = user()
    seed = HostIdentity.generate().seed
    state = {
        "name": "edge-1",
        "natsUrl": "tls://198.18.0.2:4300",
        "lattice": "prod",
        "heartbeatSeconds": 5,
        "seed": seed,
        "labels": {"tier": "edge", "note": "a=b"},
    }
    argv = host_command(state)
    assert not any(seed in a or credentials.seed in a for a in argv)
    inherited = {"PATH": "/bin", "WASMCLOUD_NATS_CREDS": "/stale.creds", "WASMCLOUD_LABEL_x": "y"}
    env = host_environment(state, credentials, inherited)
    assert env == {
        "PATH": "/bin",
        "WASMCLOUD_HOST_SEED": seed,
        "WASMCLOUD_NATS_HOST": "198.18.0.2",
        "WASMCLOUD_NATS_PORT": "4300",
        "WASMCLOUD_CTL_TLS": "true",
        "WASMCLOUD_RPC_TLS": "true",
        "WASMCLOUD_LATTICE": "prod",
        "WASMCLOUD_HEARTBEAT_INTERVAL": "5",
        "WASMCLOUD_NATS_JWT": credentials.jwt,
        "WASMCLOUD_NATS_SEED": credentials.seed,
        "WASMCLOUD_LABEL_note": "a=b",
        "WASMCLOUD_LABEL_tier": "edge",
    }
    # What the host's own option parsing makes of that environment.
    args = build_parser(env).parse_args([])
    assert nats_address(args, env).url == "tls://198.18.0.2:4300"
    assert nats_credentials(args, env) == (credentials, None)


async def _check(news: dict[str, object]) -> dict[str, str]:
    checked = await HostResource().check({}, news)
    return {f.property: f.reason for f in checked.failures}


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("natsUrl", "nats://app:pw@127.0.0.1:4222", "wasmcloud:credentials"),
        ("natsUrl", "ws://127.0.0.1:4222", "use nats:// or tls://"),
        ("natsUrl", 4222, "expected a string"),
        ("heartbeatSeconds", "5", "whole number of seconds"),
        ("heartbeatSeconds", 0, "whole number of seconds"),
        ("heartbeatSeconds", True, "whole number of seconds"),
        ("labels", ["tier=edge"], "must be a map of strings"),
        ("lattice", 5, "non-empty string"),
        ("stateDir", "", "non-empty string"),
        ("target", "ssh", "unknown target 'ssh'"),
    ],
)
def test_host_check_refuses_a_wrong_input_naming_it(field: str, value: object, said: str) -> None:
    news = {"name": "edge-1", "natsUrl": "nats://127.0.0.1:4222", field: value}
    failures = asyncio.run(_check(news))
    assert list(failures) == [field], failures
    assert said in failures[field]


def test_host_check_accepts_what_the_sdk_sends() -> None:
    news = {"name": "edge-1", "natsUrl": "nats://198.18.0.2:4222", "labels": {"tier": "edge"}}
    assert asyncio.run(_check(news)) == {}
