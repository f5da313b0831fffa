"""blobstore-s3: wasi:blobstore in S3 buckets (AWS or any S3-compatible server).

Link config as upstream's provider reads it: a JSON ``StorageConfig`` in ``config_json``
(or base64 in ``config_b64``), preferably a link secret, else target_config; a top-level
``BUCKET_REGION``; and ``alias_<name>`` keys mapping a container name the component uses
to a real bucket. Fields of StorageConfig: access_key_id, secret_access_key,
session_token, region, max_attempts, endpoint, aliases, bucket_region (sts_config is not
supported here). Without keys in the config, boto3 reads the provider's environment
(AWS_ACCESS_KEY_ID, ...), as the AWS SDK does upstream; AWS_ENDPOINT overrides the
endpoint. Paths are path-style, as upstream forces for S3-compatible servers.

A container is a bucket, an object an S3 key. boto3 is blocking: each call runs in a
worker thread. A server that does not answer fails the call after `connect_timeout`
and `max_attempts` (default 2) with a sentence naming the endpoint, and the next call
tries again, so the provider recovers when the server is back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from host_agent.interfaces.blobstore import BlobstoreError, ObjectId, ObjectInfo
from host_agent.providers.blobstore_server import BlobstoreProvider, LinkConfigError
from host_agent.providers.sdk import run_provider

log = logging.getLogger("host_agent.provider.blobstore_s3")
T = TypeVar("T")
ALIAS_PREFIX = "alias_"
CONFIG_KEYS = ("config_json", "config_b64", "BUCKET_REGION")
DEFAULT_REGION = "us-east-1"


class StorageConfig(BaseModel):
    """Upstream's StorageConfig (serde): each field its JSON type, no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)

    access_key_id: StrictStr | None = None
    secret_access_key: StrictStr | None = None
    session_token: StrictStr | None = None
    region: StrictStr | None = None
    max_attempts: StrictInt | None = None
    endpoint: StrictStr | None = None
    aliases: dict[StrictStr, StrictStr] = {}
    bucket_region: StrictStr | None = None


def _problem(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(the whole value)"
    if first["type"] == "extra_forbidden":
        if field == "sts_config":
            return f"{source}: sts_config (assume-role) is not supported by this provider"
        known = ", ".join(StorageConfig.model_fields)
        return f"{source} has the unknown field {field!r}; its fields are {known}"
    return (
        f"{source} field {field!r}: {first['msg'].lower()}; fix its type (e.g. {_example(field)})"
    )


def _example(field: str) -> str:
    if field == "max_attempts":
        return '"max_attempts": 3, a number not a string'
    if field.startswith("aliases"):
        return '"aliases": {"photos": "my-bucket"}'
    return f'"{field}": "text"'


def storage_config(config: dict[str, str], secrets: dict[str, str]) -> StorageConfig:
    """The link's StorageConfig from its secrets (preferred) or target_config."""
    unknown = sorted(k for k in config if k not in CONFIG_KEYS and not k.startswith(ALIAS_PREFIX))
    if unknown:
        raise LinkConfigError(
            f"target_config has {', '.join(repr(k) for k in unknown)}, which blobstore-s3 "
            "does not read; put S3 settings in config_json (a secret), e.g. "
            '{"endpoint": "http://127.0.0.1:9000", "region": "us-east-1"}, and bucket '
            "aliases as alias_<name>=<bucket>"
        )
    raw, source = None, ""
    for key in ("config_b64", "config_json"):
        if key in secrets:
            raw, source = secrets[key], f"the secret {key}"
            break
        if key in config:
            raw, source = config[key], f"target_config {key}"
            log.warning("%s holds S3 settings in plain config; prefer a secret", key)
            break
    parsed = StorageConfig()
    if raw is not None:
        text = raw
        if source.endswith("config_b64"):
            try:
                text = base64.b64decode(raw, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise LinkConfigError(
                    f"{source} is not base64 of UTF-8 JSON; encode it with `base64 -w0`, or "
                    "give the JSON itself as config_json"
                ) from None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise LinkConfigError(
                f"{source} is not JSON ({error.msg} at character {error.pos}); give an "
                'object such as {"endpoint": "http://127.0.0.1:9000", "region": "us-east-1"}'
            ) from None
        if not isinstance(value, dict):
            raise LinkConfigError(f"{source} must be a JSON object of StorageConfig fields")
        try:
            parsed = StorageConfig.model_validate(value)
        except ValidationError as error:
            raise LinkConfigError(_problem(error, source)) from None
    aliases = dict(parsed.aliases)
    for key, bucket in config.items():
        if key.startswith(ALIAS_PREFIX):
            if key == ALIAS_PREFIX or not bucket:
                raise LinkConfigError(
                    f"target_config {key!r}={bucket!r}: an alias needs a name after alias_ "
                    "and a bucket, e.g. alias_photos=my-bucket"
                )
            aliases[key[len(ALIAS_PREFIX) :]] = bucket
    updates: dict[str, Any] = {"aliases": aliases}
    if "BUCKET_REGION" in config:
        updates["bucket_region"] = config["BUCKET_REGION"]
    if os.environ.get("AWS_ENDPOINT"):
        updates["endpoint"] = os.environ["AWS_ENDPOINT"]
    if parsed.max_attempts is not None and parsed.max_attempts < 1:
        raise LinkConfigError(f"{source} field 'max_attempts' must be 1 or more")
    return parsed.model_copy(update=updates)


def _client(settings: StorageConfig) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
        region_name=settings.region or os.environ.get("AWS_REGION") or DEFAULT_REGION,
    )
    config = Config(
        s3={"addressing_style": "path"},
        connect_timeout=2,
        read_timeout=10,
        retries={"max_attempts": settings.max_attempts or 2, "mode": "standard"},
    )
    return session.client("s3", endpoint_url=settings.endpoint, config=config)


class S3Backend:
    def __init__(self, settings: StorageConfig) -> None:
        self.settings = settings
        self.where = settings.endpoint or "AWS S3"
        self._s3 = _client(settings)

    def bucket(self, container: str) -> str:
        return self.settings.aliases.get(container, container)

    async def _run(self, what: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except ClientError as error:
            info = error.response.get("Error", {})
            code, message = info.get("Code", "error"), info.get("Message", "")
            raise BlobstoreError(f"S3 {what}: {code}{f': {message}' if message else ''}") from None
        except BotoCoreError as error:
            raise BlobstoreError(
                f"S3 {what}: cannot reach {self.where} ({error}); is the S3 server running "
                "and is the link's endpoint right?"
            ) from None

    @staticmethod
    def _missing(error: Exception) -> bool:
        if not isinstance(error, ClientError):
            return False
        code = str(error.response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound")

    async def create_container(self, name: str) -> None:
        bucket = self.bucket(name)
        args: dict[str, Any] = {"Bucket": bucket}
        region = self.settings.bucket_region
        if region and region != DEFAULT_REGION:
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}

        def create() -> None:
            try:
                self._s3.create_bucket(**args)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise

        await self._run(f"create bucket {bucket}", create)

    async def container_exists(self, name: str) -> bool:
        bucket = self.bucket(name)
        return await self._run(f"head bucket {bucket}", lambda: self._exists(bucket, None))

    def _exists(self, bucket: str, key: str | None) -> bool:
        try:
            if key is None:
                self._s3.head_bucket(Bucket=bucket)
            else:
                self._s3.head_object(Bucket=bucket, Key=key)
        except Exception as error:
            if self._missing(error):
                return False
            raise
        return True

    def _keys(self, bucket: str) -> list[str]:
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def _delete_keys(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3's DeleteObjects takes 1000 at a time
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

    async def delete_container(self, name: str) -> None:
        bucket = self.bucket(name)

        def delete() -> None:
            self._delete_keys(bucket, self._keys(bucket))
            self._s3.delete_bucket(Bucket=bucket)

        await self._run(f"delete bucket {bucket}", delete)

    async def clear_container(self, name: str) -> None:
        bucket = self.bucket(name)
        await self._run(
            f"clear bucket {bucket}", lambda: self._delete_keys(bucket, self._keys(bucket))
        )

    async def container_info(self, name: str) -> int:
        bucket = self.bucket(name)

        def info() -> int:
            for found in self._s3.list_buckets().get("Buckets", []):
                if found["Name"] == bucket:
                    return int(found["CreationDate"].timestamp())
            raise BlobstoreError(f"bucket {bucket} does not exist")

        return await self._run(f"list buckets for {bucket}", info)

    async def list_objects(self, name: str, limit: int | None, offset: int | None) -> list[str]:
        bucket = self.bucket(name)
        keys = await self._run(f"list bucket {bucket}", lambda: self._keys(bucket))
        start = offset or 0
        return keys[start : None if limit is None else start + limit]

    async def copy_object(self, src: ObjectId, dest: ObjectId) -> None:
        source = {"Bucket": self.bucket(src.container), "Key": src.object}
        bucket = self.bucket(dest.container)
        await self._run(
            f"copy {src} to {dest}",
            lambda: self._s3.copy_object(Bucket=bucket, Key=dest.object, CopySource=source),
        )

    async def move_object(self, src: ObjectId, dest: ObjectId) -> None:
        await self.copy_object(src, dest)
        await self.delete_object(src)

    async def delete_object(self, id_: ObjectId) -> None:
        bucket = self.bucket(id_.container)
        await self._run(
            f"delete {id_}", lambda: self._s3.delete_object(Bucket=bucket, Key=id_.object)
        )

    async def delete_objects(self, container: str, names: list[str]) -> None:
        bucket = self.bucket(container)
        await self._run(f"delete objects in {bucket}", lambda: self._delete_keys(bucket, names))

    async def has_object(self, id_: ObjectId) -> bool:
        bucket = self.bucket(id_.container)
        return await self._run(f"head {id_}", lambda: self._exists(bucket, id_.object))

    async def object_info(self, id_: ObjectId) -> ObjectInfo:
        bucket = self.bucket(id_.container)

        def head() -> ObjectInfo:
            found = self._s3.head_object(Bucket=bucket, Key=id_.object)
            return ObjectInfo(int(found["LastModified"].timestamp()), int(found["ContentLength"]))

        return await self._run(f"head {id_}", head)

    async def get_data(self, id_: ObjectId, start: int, end: int) -> bytes:
        bucket = self.bucket(id_.container)

        def read() -> bytes:
            if end < start:
                return b""
            # S3 ranges are inclusive, as the WIT's offsets are.
            found = self._s3.get_object(Bucket=bucket, Key=id_.object, Range=f"bytes={start}-{end}")
            return b"".join(found["Body"].iter_chunks(64 * 1024))

        return await self._run(f"get {id_}", read)

    async def write_data(self, id_: ObjectId, data: bytes) -> None:
        bucket = self.bucket(id_.container)
        await self._run(
            f"put {id_}", lambda: self._s3.put_object(Bucket=bucket, Key=id_.object, Body=data)
        )

    async def close(self) -> None:
        self._s3.close()


def backend(config: dict[str, str], secrets: dict[str, str], source_id: str) -> S3Backend:
    return S3Backend(storage_config(config, secrets))


if __name__ == "__main__":
    run_provider(BlobstoreProvider(backend))
