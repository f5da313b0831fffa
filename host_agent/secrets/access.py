"""The NATS permissions the secrets API needs, per role (pure; subjects from
host_agent/lattice/subjects.py). ``security/permissions.py`` merges the host's and the
tooling's into its roles; the backend's user is issued with ``backend_access``.

- a host asks for values: ``get`` and ``server_xkey``;
- tooling (the Pulumi provider, ``python -m host_agent.secrets put``) writes them:
  ``put_secret``, ``delete_secret`` and ``server_xkey``; it never reads a value;
- the backend answers all of them and alone touches its bucket.
"""

from __future__ import annotations

from host_agent.lattice.subjects import (
    INBOX_WILDCARD,
    SECRETS_BUCKET,
    kv_stream_name,
    kv_subjects,
    secrets_subject,
    secrets_wildcard,
)
from host_agent.security.jwt import Permissions

ANY_BACKEND = "*"


def host_access(backend: str = ANY_BACKEND) -> Permissions:
    return Permissions(
        pub_allow=(secrets_subject(backend, "get"), secrets_subject(backend, "server_xkey")),
        sub_allow=(INBOX_WILDCARD,),
    )


def tooling_access(backend: str = ANY_BACKEND) -> Permissions:
    return Permissions(
        pub_allow=tuple(
            secrets_subject(backend, op) for op in ("put_secret", "delete_secret", "server_xkey")
        ),
        sub_allow=(INBOX_WILDCARD,),
    )


def backend_access(
    name: str, js_domain: str | None = None, bucket: str = SECRETS_BUCKET
) -> Permissions:
    """The backend's user: its requests, replies to them, and its bucket (create, read,
    write, purge) through the JetStream API, in both API forms of a domain."""
    # Imported here: security/permissions imports this module for the host and tooling.
    from host_agent.security.permissions import api_prefixes

    stream = kv_stream_name(bucket)
    jetstream: list[str] = []
    for api in api_prefixes(js_domain):
        jetstream += [
            f"{api}.INFO",
            f"{api}.STREAM.NAMES",
            f"{api}.*.*.{stream}",
            f"{api}.*.*.{stream}.>",
            f"{api}.*.*.*.{stream}",
            f"{api}.*.*.*.{stream}.>",
            f"{api}.{kv_subjects(bucket)}",
        ]
    return Permissions(
        pub_allow=(INBOX_WILDCARD, kv_subjects(bucket), *jetstream),
        sub_allow=(secrets_wildcard(name), INBOX_WILDCARD),
        allow_responses=True,
    )
