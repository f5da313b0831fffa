"""Debian's PostgreSQL server for tests: a fresh cluster in a temporary directory,
listening on a loopback port only, with a password (scram-sha-256) for its one user.

scripts/bootstrap-test-tools.sh installs the `postgresql` package; without it the tests
that need a server skip with that reason. PostgreSQL refuses to run as root, so under
root (CI) the cluster's files belong to the package's `postgres` user and the server
runs as it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lattice import free_port


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def require_postgres() -> Path:
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("postgresql is not installed (scripts/bootstrap-test-tools.sh installs it)")
    return bin_dir


class PostgresServer:
    """One cluster; `start()` again after `stop()` brings the same data back on the same port."""

    user = "wasmcloud"
    database = "notes"

    def __init__(self, password: str = "s3cret-pg-password") -> None:
        self.bin = require_postgres()
        # Its own directory under /tmp, not pytest's tmp_path: that is private to root
        # (0700), and the server runs as `postgres` under root.
        self.workdir = Path(tempfile.mkdtemp(prefix="pulumi-wasmcloud-pg-"))
        self.data = self.workdir / "data"
        self.sockets = self.workdir / "sockets"
        self.log = self.workdir / "postgres.log"
        self.port = free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            self._as = {"user": "postgres", "group": "postgres"}
        try:
            self._initdb()
        except BaseException:
            self.remove()  # a cluster that never came up leaves nothing behind
            raise

    def _chown(self, path: Path) -> None:
        if self._as:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self._chown(self.workdir)
        self.sockets.mkdir()
        self._chown(self.sockets)
        password_file = self.workdir / "password"
        password_file.write_text(self.password + "\n")
        self._chown(password_file)
        subprocess.run(
            [
                str(self.bin / "initdb"),
                *("-D", str(self.data), "-U", self.user, "--pwfile", str(password_file)),
                *("--auth", "scram-sha-256", "-E", "UTF8", "--no-sync", "--locale", "C"),
            ],
            check=True,
            capture_output=True,
            **self._as,
        )
        password_file.unlink()
        # initdb made the user's own database `postgres`; the example uses another one.
        self.start()
        self.psql(f"CREATE DATABASE {self.database}", database="postgres")

    def start(self) -> PostgresServer:
        log = open(self.log, "ab")  # noqa: SIM115 - the server writes it while it runs
        self._chown(self.log)
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                *("-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets)),
                *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                *("-c", "max_connections=40", "-c", "shared_buffers=16MB"),
            ],
            stdout=log,
            stderr=log,
            **self._as,
        )
        log.close()
        # Ready: pg_isready says it accepts connections (it exits 0 only then).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not get ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT): open connections are cut, as when a server goes down."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def psql(self, sql: str, database: str | None = None) -> str:
        result = subprocess.run(
            [
                str(self.bin / "psql"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", self.user),
                *("-d", database or self.database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return result.stdout.decode().strip()

    def link_config(self) -> dict[str, str]:
        """The link's plain settings (no password: that is a secret)."""
        return {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USERNAME": self.user,
            "POSTGRES_DATABASE": self.database,
            "POSTGRES_TLS_REQUIRED": "false",
        }

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
