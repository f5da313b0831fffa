"""One blob body, downloaded on a blocking socket in a worker thread straight into the
buffer the caller gets, and hashed by a second thread while the rest arrives.

Why not aiohttp here (it makes every other registry request): its parser copies each
256 KiB socket read into a new bytes object, `readany` joins those, and the pull joined
them once more: three copies of an 18 MB component plus an event-loop turn per read,
which made our pull of the counter 2-3x slower than a plain GET of the same blob
(benchmarks/pull.py). `http.client`'s `readinto` fills a preallocated buffer from the
socket (the kernel's copy only) and releases the GIL, so sha256 of one piece (hashlib
releases the GIL on large buffers too) runs on the other core while the next piece
arrives. sha256 runs at about the speed loopback delivers, so that overlap is most of
what makes verifying nearly free.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import queue
import socket
import ssl
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

# Pieces handed to the hashing thread: big enough that a hand-off per piece costs nothing,
# small enough that the hash of the last piece (the part that cannot overlap) is short.
PIECE = 1024 * 1024
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class TooManyRedirects(Exception):
    pass


@dataclass(frozen=True)
class Refused:
    """The registry answered something other than the blob (a status to report or an
    auth challenge to answer)."""

    status: int
    challenge: str  # WWW-Authenticate, "" when absent


@dataclass(frozen=True)
class Downloaded:
    data: bytes  # `size` bytes, of which `received` came from the registry
    received: int
    digest: str  # sha256 of the received bytes, "sha256:<hex>"
    longer: bool  # the body went on past `size`: refused without reading the rest


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's CAs, loaded once (loading them takes milliseconds, every pull)."""
    return ssl.create_default_context()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


class BlobDownload:
    """GET `url` (following redirects; Authorization is dropped when one leaves the
    registry's origin, as storage back ends sign their own URLs) and read at most `size`
    bytes of the body. `run` blocks (call it in a worker thread); `abort` from any
    thread ends it early by shutting the socket down."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        size: int,
        *,
        timeout: float,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url
        self.headers = headers
        self.size = size
        self.timeout = timeout
        self.progress = progress
        self._connection: http.client.HTTPConnection | None = None
        self._aborted = threading.Event()

    def abort(self) -> None:
        self._aborted.set()
        connection = self._connection
        if connection is not None and connection.sock is not None:
            with suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> Downloaded | Refused:
        try:
            response = self._get()
            if response.status != 200:
                return Refused(response.status, response.getheader("WWW-Authenticate", ""))
            if response.length is not None and response.length > self.size:
                return Downloaded(b"", 0, "", longer=True)
            return self._read(response)
        finally:
            if self._connection is not None:
                self._connection.close()

    def _get(self) -> http.client.HTTPResponse:
        url, headers = self.url, dict(self.headers)
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            connection: http.client.HTTPConnection
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(
                    parts.hostname or "",
                    parts.port,
                    timeout=self.timeout,
                    context=_tls_context(),
                )
            else:
                connection = http.client.HTTPConnection(
                    parts.hostname or "", parts.port, timeout=self.timeout
                )
            self._connection = connection
            if self._aborted.is_set():
                raise ConnectionAbortedError("the download was cancelled")
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status not in REDIRECTS or not location:
                return response
            connection.close()
            next_url = urljoin(url, location)
            if _origin(next_url) != _origin(url):
                headers.pop("Authorization", None)
            url = next_url
        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects from {self.url}")

    def _read(self, response: http.client.HTTPResponse) -> Downloaded:
        # The body is read in place into the buffer the caller gets: bytes(size) is
        # calloc'd (fresh pages come zeroed from the kernel as they are first written, no
        # extra pass over them), the BytesIO owns it alone, so getbuffer() writes into it
        # without copying and getvalue() hands it back as bytes, again without copying.
        # Joining pieces, or bytes(bytearray), would copy the whole blob once more.
        body = io.BytesIO(bytes(self.size))
        hasher = hashlib.sha256()
        pieces: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        received = 0
        with body.getbuffer() as view:

            def hash_pieces() -> None:
                while (piece := pieces.get()) is not None:
                    hasher.update(view[piece[0] : piece[1]])

            hashing = threading.Thread(target=hash_pieces, name="blob sha256", daemon=True)
            hashing.start()
            try:
                while received < self.size:
                    if self._aborted.is_set():
                        raise ConnectionAbortedError("the download was cancelled")
                    count = response.readinto(view[received : received + PIECE])
                    if not count:
                        break
                    pieces.put((received, received + count))
                    received += count
                    if self.progress is not None:
                        self.progress(received)
                longer = received == self.size and bool(response.read(1))
            finally:
                pieces.put(None)
                hashing.join()
        return Downloaded(body.getvalue(), received, "sha256:" + hasher.hexdigest(), longer)
