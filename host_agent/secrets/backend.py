"""The NATS KV secrets backend: upstream's ``secrets-nats-kv`` protocol, in Python.

It answers ``wasmcloud.secrets.v1alpha1.<name>.>`` in a queue group:
  - ``server_xkey``: its transit public key (hosts seal requests to it);
  - ``get``: a SecretRequest sealed by the host's xkey (public key in the
    ``WasmCloud-Host-Xkey`` header); the SecretResponse comes back sealed to that key by
    a fresh one named in ``Server-Response-Xkey``; errors come back in the clear (they
    carry no value);
  - ``put_secret`` (as upstream) and ``delete_secret`` (ours): the same sealing, for tools
    such as the Pulumi ``Secret`` resource.
Values rest in the KV bucket sealed with the encryption xkey (to itself), so a reader of
the bucket sees ciphertext only; the encryption seed lives in this process alone.

What it checks, and what it does not: NATS decides who may publish on ``get`` (hosts) and
``put_secret``/``delete_secret`` (tooling); the host decides which entity gets which
secret (the manifest's references). Upstream's per-entity mappings (``add_mapping``,
keyed by signed entities' public keys) are not implemented: built-in providers are not
signed artifacts, so they have no key to map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import InvalidKeyError, KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from host_agent.lattice.jetstream import open_kv
from host_agent.lattice.strict import BadRequest
from host_agent.lattice.subjects import SECRETS_BUCKET, SECRETS_SUBJECT_PREFIX
from host_agent.secrets.protocol import (
    DEFAULT_BACKEND,
    HOST_XKEY_HEADER,
    RESPONSE_XKEY_HEADER,
    DeleteSecretRequest,
    GetSecretErrorWire,
    PutSecretRequest,
    PutSecretResponse,
    Secret,
    SecretRequest,
    SecretResponse,
    secrets_wildcard,
)
from host_agent.secrets.xkeys import XKey, XKeyError

log = logging.getLogger("host_agent.secrets.backend")

DEFAULT_BUCKET = SECRETS_BUCKET
DEFAULT_HISTORY = 64  # upstream's default max_secret_history
QUEUE_BASE = "wasmcloud_secrets"


@dataclass
class BackendSettings:
    encryption_xkey: XKey  # must stay the same for the life of the bucket
    transit_xkey: XKey  # the same on every instance of the queue group
    name: str = DEFAULT_BACKEND
    bucket: str = DEFAULT_BUCKET
    subject_prefix: str = SECRETS_SUBJECT_PREFIX
    history: int = DEFAULT_HISTORY
    replicas: int = 1


@dataclass
class NatsKvBackend:
    nc: NatsClient
    settings: BackendSettings
    js_domain: str | None = None
    _kv: KeyValue | None = None
    _subscription: Subscription | None = field(default=None, repr=False)

    async def start(self) -> None:
        js = self.nc.jetstream(domain=self.js_domain)
        self._kv = await open_kv(
            js, self.settings.bucket, self.settings.replicas, history=self.settings.history
        )
        subject = secrets_wildcard(self.settings.name, self.settings.subject_prefix)
        queue = f"{QUEUE_BASE}.{self.settings.name}"
        self._subscription = await self.nc.subscribe(subject, queue=queue, cb=self._on_message)
        log.info("secrets backend %s listening on %s", self.settings.name, subject)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_message(self, msg: Msg) -> None:
        if not msg.reply:
            return
        operation = msg.subject.rsplit(".", 1)[-1]
        try:
            if operation == "server_xkey":
                await msg.respond(self.settings.transit_xkey.public_key.encode())
            elif operation == "get":
                await self._get(msg)
            elif operation == "put_secret":
                await self._put(msg)
            elif operation == "delete_secret":
                await self._delete(msg)
            else:
                await msg.respond(f"unknown operation {operation}".encode())
        except Exception:  # one bad request must not stop the backend
            log.exception("secrets %s request failed", operation)
            await self._refuse(msg, {"Other": "the secrets backend failed; see its log"})

    async def _refuse(self, msg: Msg, error: GetSecretErrorWire) -> None:
        await msg.respond(SecretResponse(error=error).dump())

    def _open(self, msg: Msg) -> tuple[bytes, XKey] | GetSecretErrorWire:
        """The request's plaintext and the sender's key, or the error to answer."""
        if not msg.data:
            return "InvalidPayload"
        sender = (msg.headers or {}).get(HOST_XKEY_HEADER)
        if not sender:
            return "InvalidXKey"
        try:
            key = XKey.from_public_key(sender, HOST_XKEY_HEADER)
            return self.settings.transit_xkey.open(msg.data, key), key
        except XKeyError:
            return "DecryptionError"

    async def _get(self, msg: Msg) -> None:
        opened = self._open(msg)
        if not isinstance(opened, tuple):
            await self._refuse(msg, opened)
            return
        plaintext, requester = opened
        try:
            request = SecretRequest.parse(plaintext)
        except BadRequest:
            await self._refuse(msg, "InvalidRequest")
            return
        found = await self._read(request.key, request.version)
        if isinstance(found, (str, dict)):
            await self._refuse(msg, found)
            return
        reply_key = XKey.generate()
        sealed = reply_key.seal(SecretResponse(secret=found).dump(), requester)
        await self.nc.publish(
            msg.reply, sealed, headers={RESPONSE_XKEY_HEADER: reply_key.public_key}
        )

    async def _read(self, key: str, version: str | None) -> Secret | GetSecretErrorWire:
        assert self._kv is not None
        try:
            if version is None:
                entry = await self._kv.get(key)
            else:
                if not version.isdigit():
                    return "InvalidRequest"
                if int(version) == 0:  # no revision 0 (nats-py would read it as "latest")
                    return "SecretNotFound"
                entry = await self._kv.get(key, revision=int(version))
        except (KeyNotFoundError, KeyDeletedError):
            return "SecretNotFound"
        except InvalidKeyError:
            return {"UpstreamError": "the key is not a NATS KV key (letters, digits, -/_=.)"}
        if entry.value is None:
            return "SecretNotFound"
        try:
            value = self.settings.encryption_xkey.open(entry.value, self.settings.encryption_xkey)
        except XKeyError:
            return "DecryptionError"
        revision = str(entry.revision)
        try:
            return Secret(version=revision, string_secret=value.decode())
        except UnicodeDecodeError:
            return Secret(version=revision, binary_secret=list(value))

    async def _put(self, msg: Msg) -> None:
        opened = self._open(msg)
        if not isinstance(opened, tuple):
            await _answer_write(msg, PutSecretResponse(error=opened))
            return
        try:
            request = PutSecretRequest.parse(opened[0])
        except BadRequest as error:
            await _answer_write(msg, PutSecretResponse(error={"Other": str(error)}))
            return
        if request.string_secret is not None:
            plain = request.string_secret.encode()
        elif request.binary_secret is not None:
            plain = bytes(request.binary_secret)
        else:
            await _answer_write(msg, PutSecretResponse(error="NoSecretProvided"))
            return
        assert self._kv is not None
        key = self.settings.encryption_xkey
        revision = await self._kv.put(request.key, key.seal(plain, key))
        log.info("secret %s stored (revision %d)", request.key, revision)
        await _answer_write(msg, PutSecretResponse(revision=revision))

    async def _delete(self, msg: Msg) -> None:
        opened = self._open(msg)
        if not isinstance(opened, tuple):
            await _answer_write(msg, PutSecretResponse(error=opened))
            return
        try:
            request = DeleteSecretRequest.model_validate_json(opened[0], strict=True)
        except ValueError:
            await _answer_write(msg, PutSecretResponse(error="InvalidRequest"))
            return
        assert self._kv is not None
        await self._kv.purge(request.key)  # the history too: old values must not linger
        log.info("secret %s deleted", request.key)
        await _answer_write(msg, PutSecretResponse())


async def _answer_write(msg: Msg, response: PutSecretResponse) -> None:
    await msg.respond(response.model_dump_json().encode())
