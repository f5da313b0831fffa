"""Requests to a secrets backend over NATS: what a host (``get``) and a tool (``put``,
``delete``) send. Each request is sealed with a fresh xkey to the backend's transit key,
asked once per client (upstream's secrets-client does the same)."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from host_agent.lattice.strict import BadRequest, parse_json
from host_agent.lattice.subjects import SECRETS_SUBJECT_PREFIX
from host_agent.secrets.protocol import (
    HOST_XKEY_HEADER,
    RESPONSE_XKEY_HEADER,
    DeleteSecretRequest,
    PutSecretRequest,
    PutSecretResponse,
    Secret,
    SecretRequest,
    SecretResponse,
    error_text,
    secrets_subject,
)
from host_agent.secrets.xkeys import XKey, XKeyError

REQUEST_TIMEOUT = 5.0


class SecretsError(Exception):
    """A secret that could not be fetched or stored; the message names it, never its value."""


class SecretNotFound(SecretsError):
    pass


class SecretsClient:
    def __init__(
        self,
        nc: NatsClient,
        backend: str,
        prefix: str = SECRETS_SUBJECT_PREFIX,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.nc = nc
        self.backend = backend
        self.prefix = prefix
        self.timeout = timeout
        self._server_xkey: XKey | None = None

    def _subject(self, operation: str) -> str:
        return secrets_subject(self.backend, operation, self.prefix)

    async def _request(self, operation: str, payload: bytes, headers: dict[str, str] | None) -> Msg:
        try:
            return await self.nc.request(
                self._subject(operation), payload, timeout=self.timeout, headers=headers
            )
        except (NoRespondersError, NatsTimeout):
            raise SecretsError(
                f"secrets backend {self.backend!r} does not answer on "
                f"{self._subject(operation)} (is it running, and may this identity "
                "publish there?)"
            ) from None

    async def server_xkey(self) -> XKey:
        if self._server_xkey is None:
            reply = await self._request("server_xkey", b"", None)
            try:
                self._server_xkey = XKey.from_public_key(
                    reply.data.decode(errors="replace"), "the backend's server_xkey"
                )
            except XKeyError as error:
                raise SecretsError(f"secrets backend {self.backend!r}: {error}") from None
        return self._server_xkey

    async def _sealed(self, operation: str, body: bytes) -> tuple[bytes, dict[str, str], XKey]:
        server = await self.server_xkey()
        own = XKey.generate()
        reply = await self._request(
            operation, own.seal(body, server), {HOST_XKEY_HEADER: own.public_key}
        )
        return reply.data, dict(reply.headers or {}), own

    async def get(self, request: SecretRequest, what: str) -> Secret:
        """The secret ``request`` names; ``what`` names it in errors (e.g. the reference)."""
        data, headers, own = await self._sealed("get", request.model_dump_json().encode())
        sender = headers.get(RESPONSE_XKEY_HEADER)
        try:
            if sender is None:
                response = SecretResponse.parse(data)
            else:
                plain = own.open(data, XKey.from_public_key(sender, RESPONSE_XKEY_HEADER))
                response = SecretResponse.parse(plain)
        except (BadRequest, XKeyError) as error:
            raise SecretsError(
                f"{what}: backend {self.backend!r} answered badly: {error}"
            ) from None
        if response.error is not None:
            text = error_text(response.error)
            if response.error == "SecretNotFound":
                raise SecretNotFound(
                    f"{what}: backend {self.backend!r} has no secret {request.key!r}"
                    + (f" at version {request.version}" if request.version else "")
                )
            raise SecretsError(f"{what}: backend {self.backend!r} refused: {text}")
        if response.secret is None:
            raise SecretNotFound(f"{what}: backend {self.backend!r} has no secret {request.key!r}")
        return response.secret

    async def put(self, key: str, value: str | bytes) -> int:
        """Store ``value`` under ``key``; the revision the backend gave it."""
        body = PutSecretRequest(
            key=key,
            string_secret=value if isinstance(value, str) else None,
            binary_secret=list(value) if isinstance(value, bytes) else None,
        )
        return await self._write("put_secret", key, body.model_dump_json().encode())

    async def delete(self, key: str) -> None:
        await self._write(
            "delete_secret", key, DeleteSecretRequest(key=key).model_dump_json().encode()
        )

    async def _write(self, operation: str, key: str, body: bytes) -> int:
        data, _, _ = await self._sealed(operation, body)
        try:
            response = parse_json(
                PutSecretResponse, data, f"{operation} reply", quote_strings=False
            )
        except BadRequest:
            raise SecretsError(
                f"secret {key!r}: backend {self.backend!r} answered {operation} badly "
                f"({data[:200].decode(errors='replace')})"
            ) from None
        if response.error is not None:
            raise SecretsError(
                f"secret {key!r}: backend {self.backend!r} refused {operation}: "
                f"{error_text(response.error)}"
            )
        return response.revision
