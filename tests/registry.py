"""A real OCI registry for tests: Debian's ``docker-registry`` (the distribution registry)
on a loopback port, storing blobs in a directory the test owns.

With ``users``, the registry refuses anonymous clients (401 with a Basic challenge) and
accepts only the names and passwords given, read from a bcrypt htpasswd file, as
distribution's htpasswd auth requires. ``stop()`` then ``start()`` again on the same port and
storage is "the registry comes back": what was pushed before is still there.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import IO

import bcrypt
import yaml

from tests.lattice import free_port

REGISTRY_BINARY = "docker-registry"


def put_blob(base_url: str, repository: str, data: bytes) -> str:
    """Upload ``data`` as a blob of ``repository`` with the distribution API's monolithic
    upload (POST, then PUT with the digest); returns its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"{base_url}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=5) as response:
        location = str(response.headers["Location"])
    if location.startswith("/"):
        location = base_url + location
    separator = "&" if "?" in location else "?"
    upload = urllib.request.Request(
        f"{location}{separator}digest={digest}", data=data, method="PUT"
    )
    upload.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(upload, timeout=5) as response:
        if response.status != 201:
            raise RuntimeError(f"blob upload answered {response.status}, not 201")
    return digest


def http_status(url: str) -> int | None:
    """The HTTP status of GET ``url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def registry_available() -> bool:
    return shutil.which(REGISTRY_BINARY) is not None


class RegistryProcess:
    """``docker-registry serve config.yml`` on 127.0.0.1:<port>."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.users = dict(users or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``: the registry part of a reference, and the value for
        ``WASMCLOUD_OCI_ALLOWED_INSECURE``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    def reference(self, repository: str, tag: str = "latest") -> str:
        return f"{self.address}/{repository}:{tag}"

    def _write_config(self) -> Path:
        config: dict[str, object] = {
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                # Tests push a new version under the same tag, and delete to exercise a
                # missing tag.
                "delete": {"enabled": True},
            },
            "http": {"addr": self.address, "secret": "tests-only-not-a-secret"},
        }
        if self.users:
            htpasswd = self.workdir / "htpasswd"
            # distribution's htpasswd auth reads bcrypt hashes only.
            lines = []
            for name, password in self.users.items():
                hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
                lines.append(f"{name}:{hashed}\n")
            htpasswd.write_text("".join(lines))
            config["auth"] = {"htpasswd": {"realm": "tests", "path": str(htpasswd)}}
        path = self.workdir / "config.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, timeout: float = 15.0) -> RegistryProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        config = self._write_config()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        # Up: GET /v2/ answers, 200 (or 401 when auth is on).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            status = self.get_status("/v2/")
            if status in (200, 401):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"docker-registry did not answer GET /v2/ on {self.address} in {timeout}s"
        )

    def get_status(self, path: str, user: str | None = None) -> int | None:
        """The HTTP status of GET ``path``, or None when nothing answers."""
        request = urllib.request.Request(self.url + path)
        if user is not None:
            token = base64.b64encode(f"{user}:{self.users[user]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> RegistryProcess:
        """Stop, then start again on the same port with the same storage."""
        self.stop()
        return self.start()
