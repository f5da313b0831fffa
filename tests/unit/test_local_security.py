"""The local lattice's security, pure parts: what it keeps in state (read back strictly),
what it renews before expiry, the files it writes (0600, whole) and where tools find them."""

from __future__ import annotations

import re
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from host_agent.local.credentials import find_local_credentials, local_nats_options
from host_agent.security.tls import expires_at
from pulumi_wasmcloud.provider.local_security import (
    CONFIG_FILE,
    LocalSecurity,
    SecurityStateError,
    server_config,
    write_files,
    write_private,
)

NOW = datetime(2026, 11, 30, tzinfo=UTC)
# A whole nkey seed (S, its type, 56 base32 characters), not a run inside a public key:
# "S[OAUNC][A-Z2-7]{50,}" matched inside about one account key in sixty.
SEED = re.compile(r"(?<![A-Z2-7])S[OAUNC][A-Z2-7]{56}(?![A-Z2-7])")


@pytest.fixture(scope="module")
def security() -> LocalSecurity:
    return LocalSecurity.create("default", NOW)


def test_the_state_reads_back_as_it_was_written(security: LocalSecurity) -> None:
    again = LocalSecurity.from_state(security.outputs(), NOW)
    assert again.outputs() == security.outputs()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credentials", 42),
        ("credentials", "not a creds file"),
        ("controllerCredentials", None),
        ("tls", {"ca": "x"}),
        ("secretsKey", 5),
        ("secretsKey", "SXNOTAKEY"),
    ],
)
def test_a_wrong_state_field_is_named_and_its_secret_is_not_shown(
    security: LocalSecurity, field: str, value: object
) -> None:
    state = {**security.outputs(), field: value}
    with pytest.raises(SecurityStateError) as raised:
        LocalSecurity.from_state(state, NOW)
    assert field.split(".")[0] in str(raised.value)
    assert not SEED.search(str(raised.value))


def test_a_user_of_another_lattice_is_refused(security: LocalSecurity) -> None:
    other = LocalSecurity.create("default", NOW)
    state = {**security.outputs(), "credentials": other.outputs()["credentials"]}
    with pytest.raises(SecurityStateError, match="credentials is a user of another account"):
        LocalSecurity.from_state(state, NOW)


def test_nothing_is_renewed_long_before_expiry(security: LocalSecurity) -> None:
    assert not security.tls.due(NOW + timedelta(days=300))
    assert security.rotated(NOW + timedelta(days=300)) is security


def test_the_server_certificate_is_renewed_within_30_days_of_expiry(
    security: LocalSecurity,
) -> None:
    later = NOW + timedelta(days=340)
    assert security.tls.due(later)
    renewed = security.rotated(later)
    assert renewed.tls.ca == security.tls.ca  # the CA clients trust stays
    assert renewed.tls.server != security.tls.server
    assert expires_at(renewed.tls.server.cert_pem) > later + timedelta(days=300)
    assert renewed.authority == security.authority  # users stay valid


def test_an_expiring_ca_is_renewed_with_the_server_certificate(security: LocalSecurity) -> None:
    later = NOW + timedelta(days=3640)
    renewed = security.rotated(later)
    assert renewed.tls.ca != security.tls.ca
    assert expires_at(renewed.tls.ca.cert_pem) > later + timedelta(days=3000)


def test_a_lattice_secured_before_tls_gets_tls_when_read(security: LocalSecurity) -> None:
    state = {k: v for k, v in security.outputs().items() if k not in ("tls", "caCert")}
    assert LocalSecurity.from_state(state, NOW).tls.ca.cert_pem.startswith("-----BEGIN")


def test_the_server_config_holds_operator_mode_and_tls_but_no_secret(
    security: LocalSecurity, tmp_path: Path
) -> None:
    config = server_config(security, tmp_path, 4222, "default")
    assert "operator:" in config and "resolver: MEMORY" in config
    assert '"127.0.0.1:4222"' in config
    assert "verify: false" in config
    assert not SEED.search(config)
    assert "PRIVATE KEY" not in config


def test_files_are_written_0600_and_a_rewrite_says_whether_anything_changed(
    security: LocalSecurity, tmp_path: Path
) -> None:
    assert write_files(security, tmp_path, 4222, "default") is True
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert not list(tmp_path.glob(".*.partial"))
    # The same again: nothing for nats-server to reload.
    assert write_files(security, tmp_path, 4222, "default") is False
    renewed = security.rotated(NOW + timedelta(days=340))
    assert write_files(renewed, tmp_path, 4222, "default") is True
    assert (tmp_path / CONFIG_FILE).exists()


def test_a_file_left_readable_by_others_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "nats.creds"
    path.write_text("same")
    path.chmod(0o644)
    assert write_private(path, "same") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_tools_find_the_creds_and_ca_by_the_state_folder(
    security: LocalSecurity, tmp_path: Path
) -> None:
    assert find_local_credentials(tmp_path) is None
    assert local_nats_options(env={"WASMCLOUD_STATE_DIR": str(tmp_path)}) == {}
    write_files(security, tmp_path, 4222, "default")
    found = find_local_credentials(tmp_path)
    assert found is not None and found.ca_file is not None
    exports = found.shell_exports()
    assert f"WASH_CTL_CREDS={tmp_path.resolve() / 'nats.creds'}" in exports
    assert f"WASH_CTL_TLS_CA_FILE={tmp_path.resolve() / 'ca.pem'}" in exports
    assert not SEED.search(exports)
    options = local_nats_options(env={"WASMCLOUD_STATE_DIR": str(tmp_path)})
    assert options["user_credentials"] == str(tmp_path.resolve() / "nats.creds")
    assert isinstance(options["tls"], ssl.SSLContext)
