"""What each kind of lattice identity may publish and subscribe to (pure).

Every subject comes from ``host_agent.lattice.subjects`` (one source of truth), scoped to
ONE lattice: an identity of lattice ``a`` has no permission on lattice ``b``'s control,
event, wRPC or KV subjects even where both lattices share an account. Each lattice also
has its own account (``authority.py``), so this is the second wall, not the only one.

Roles:
- HOST serves its lattice's control subjects, publishes its events, heartbeats and log
  records (``host_log_subject``), keeps
  the lattice's link and config buckets, serves wRPC, asks for link grants, and talks to
  its providers on ``wasmbus.rpc.{lattice}.*``.
- CONTROLLER (wadm) serves the wadm API and link grants, sends control requests to hosts,
  follows events, keeps its own buckets and status stream.
- PROVIDER answers its host on ``wasmbus.rpc.{lattice}.{provider}.>``, serves wRPC as its
  own id, and may keep application buckets (keyvalue-nats) but not the lattice's own.
- TOOLING (wash 0.39, the `wasmcloud` CLI, the Pulumi provider) sends control and wadm
  requests, follows events, application status and host logs, and makes or reads the lattice's
  buckets (the Pulumi provider makes them with their replicas on a cluster).

Every role may subscribe to ``_INBOX.>`` (the replies to its requests) and publish there:
wRPC answers on ``<reply>.results``/``<reply>.error``, not on the reply subject itself, so
``allow_responses`` alone would not do. wRPC invocations: a base user (HOST, PROVIDER)
may serve wRPC but invoke only its ``link_targets`` (none by default): outgoing calls go
over a second connection whose user is a link grant the controller signs
(``grants.py``); hosts ask for grants on ``link_grant_subject``, the controller answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from host_agent.lattice.subjects import (
    DEFAULT_CTL_PREFIX,
    INBOX_WILDCARD,
    PROVIDER_EVENTS,
    SECRETS_BUCKET,
    WADM_LEADER_BUCKET,
    WADM_MANIFESTS_BUCKET,
    WADM_STATUS_STREAM,
    CtlSubjects,
    config_bucket,
    event_subject,
    events_wildcard,
    host_log_wildcard,
    jetstream_api_prefix,
    kv_stream_name,
    kv_subjects,
    link_grant_subject,
    links_bucket,
    provider_rpc_wildcard,
    wadm_api_wildcard,
    wadm_status_wildcard,
    wrpc_wildcard,
)
from host_agent.secrets.access import host_access, tooling_access
from host_agent.security.jwt import Permissions


class Role(StrEnum):
    HOST = "host"
    CONTROLLER = "controller"
    PROVIDER = "provider"
    TOOLING = "tooling"


def api_prefixes(js_domain: str | None) -> tuple[str, ...]:
    """The JetStream API prefixes a client in ``js_domain`` must be allowed: the domain's
    (``$JS.{domain}.API``, what crosses a leaf connection to the hub) AND the plain one,
    since a node of the domain itself maps ``$JS.{domain}.API.>`` to ``$JS.API.>``
    before it checks the user's permissions (seen on nats-server 2.12.1)."""
    plain = jetstream_api_prefix()
    return (jetstream_api_prefix(js_domain), plain) if js_domain else (plain,)


def stream_api(stream: str, js_domain: str | None) -> tuple[str, ...]:
    """The JetStream API subjects a client uses on ``stream``: with the stream as the 3rd
    to 5th token, they are STREAM.{INFO,CREATE,UPDATE}, DIRECT.GET,
    CONSUMER.{CREATE,INFO,DELETE}, STREAM.MSG.GET, CONSUMER.DURABLE.CREATE and
    CONSUMER.MSG.NEXT (ordered watchers and pulls); written as four wildcards to keep the
    user JWT small (nats-server reads a JWT in the CONNECT line, at most
    ``max_control_line`` bytes). Then the acks and flow-control answers of a push
    consumer on the stream."""
    subjects = [
        subject
        for api in api_prefixes(js_domain)
        for subject in (
            f"{api}.*.*.{stream}",
            f"{api}.*.*.{stream}.>",
            f"{api}.*.*.*.{stream}",
            f"{api}.*.*.*.{stream}.>",
        )
    ]
    return (*subjects, f"$JS.ACK.{stream}.>", f"$JS.FC.{stream}.>")


def bucket_access(bucket: str, js_domain: str | None, *, write: bool) -> tuple[str, ...]:
    """Publish permissions to read (and with ``write``, put/delete keys of) a KV bucket.
    Through a domain, a write goes to ``$JS.{domain}.API.$KV.{bucket}.>``."""
    subjects = list(stream_api(kv_stream_name(bucket), js_domain))
    if write:
        subjects.append(kv_subjects(bucket))
        if js_domain:
            subjects += [f"{api}.{kv_subjects(bucket)}" for api in api_prefixes(js_domain)]
    return tuple(subjects)


def lattice_buckets(lattice: str) -> tuple[str, ...]:
    """The buckets hosts keep for the lattice: links and named configs."""
    return (links_bucket(lattice), config_bucket(lattice))


def wadm_access(lattice: str, js_domain: str | None, *, write: bool) -> tuple[str, ...]:
    """The controller's buckets and status stream (wadm's names)."""
    return (
        *bucket_access(WADM_MANIFESTS_BUCKET, js_domain, write=write),
        *bucket_access(WADM_LEADER_BUCKET, js_domain, write=write),
        *stream_api(WADM_STATUS_STREAM, js_domain),
    )


def wrpc_invocations(lattice: str, link_targets: Sequence[str]) -> tuple[str, ...]:
    """The wRPC subjects an identity may invoke: those of its link targets (H7's grants
    fill them in per link)."""
    return tuple(wrpc_wildcard(lattice, target) for target in link_targets)


def role_permissions(
    role: Role,
    lattice: str,
    *,
    js_domain: str | None = None,
    link_targets: Sequence[str] = (),
    identity: str | None = None,
    application_buckets: bool = False,
    ctl_prefix: str = DEFAULT_CTL_PREFIX,
) -> Permissions:
    """The permissions of one ``role`` identity in ``lattice``. ``identity`` is the
    provider id a PROVIDER serves as (any provider of the lattice when None);
    ``application_buckets`` lets a PROVIDER keep KV buckets of any name but the
    lattice's and wadm's own (keyvalue-nats: a link names the bucket);
    ``link_targets`` the component/provider ids it may invoke over wRPC (none by default:
    link grants carry a host's and a provider's outgoing calls)."""
    ctl = CtlSubjects(lattice, ctl_prefix)
    # Replies to its requests, JetStream account info (what a client asks first) and the
    # stream-name lookup nats-py makes before it watches a bucket (names only, no data).
    replies = Permissions(
        pub_allow=(
            INBOX_WILDCARD,
            *(
                f"{api}.{what}"
                for api in api_prefixes(js_domain)
                for what in ("INFO", "STREAM.NAMES")
            ),
        ),
        sub_allow=(INBOX_WILDCARD,),
    )
    if role is Role.HOST:
        own = Permissions(
            pub_allow=(
                events_wildcard(lattice),
                host_log_wildcard(lattice),  # its log records (`wasmcloud logs`)
                provider_rpc_wildcard(lattice),
                link_grant_subject(lattice),
                *wrpc_invocations(lattice, link_targets),
                *(
                    subject
                    for bucket in lattice_buckets(lattice)
                    for subject in bucket_access(bucket, js_domain, write=True)
                ),
            ),
            # wasmbus.rpc: providers the host starts connect as the host's user (HostData
            # lattice_rpc_user_jwt, as upstream) unless they are given their own.
            # The events that say which provider each host runs (lattice_providers.py).
            sub_allow=(
                ctl.wildcard(),
                wrpc_wildcard(lattice),
                provider_rpc_wildcard(lattice),
                *(event_subject(lattice, event) for event in PROVIDER_EVENTS),
            ),
            allow_responses=True,
        ).merged(host_access())  # secret values for its components and providers
    elif role is Role.CONTROLLER:
        own = Permissions(
            pub_allow=(
                ctl.wildcard(),
                events_wildcard(lattice),
                wadm_status_wildcard(lattice),
                *wadm_access(lattice, js_domain, write=True),
                *(
                    subject
                    for bucket in lattice_buckets(lattice)
                    for subject in bucket_access(bucket, js_domain, write=False)
                ),
            ),
            sub_allow=(
                wadm_api_wildcard(lattice),
                link_grant_subject(lattice),
                events_wildcard(lattice),
                wadm_status_wildcard(lattice),
            ),
            allow_responses=True,
        )
    elif role is Role.PROVIDER:
        provider = identity or "*"
        buckets = Permissions(pub_allow=())
        if application_buckets:
            # Bucket names come from link config at run time; the account is the lattice's
            # own, so "any bucket but the lattice's and wadm's" stays inside the lattice.
            buckets = Permissions(
                pub_allow=(
                    *stream_api("*", js_domain),
                    "$KV.>",
                    *((f"{api}.$KV.>" for api in api_prefixes(js_domain)) if js_domain else ()),
                ),
                pub_deny=_protected_buckets(lattice, js_domain),
            )
        own = Permissions(
            pub_allow=(
                provider_rpc_wildcard(lattice, provider),
                *wrpc_invocations(lattice, link_targets),
            ),
            sub_allow=(provider_rpc_wildcard(lattice, provider), wrpc_wildcard(lattice, provider)),
            allow_responses=True,
        ).merged(buckets)
    elif role is Role.TOOLING:
        own = Permissions(
            pub_allow=(
                ctl.wildcard(),
                wadm_api_wildcard(lattice),
                *(
                    subject
                    for bucket in lattice_buckets(lattice)
                    for subject in bucket_access(bucket, js_domain, write=False)
                ),
                *wadm_access(lattice, js_domain, write=False),
            ),
            sub_allow=(
                events_wildcard(lattice),
                wadm_status_wildcard(lattice),
                host_log_wildcard(lattice),
            ),
        ).merged(tooling_access())  # puts and deletes secrets, never reads one
    else:  # pragma: no cover - StrEnum is closed
        raise ValueError(f"unknown role {role!r}")
    return replies.merged(own)


def _protected_buckets(lattice: str, js_domain: str | None) -> tuple[str, ...]:
    """What a provider may not do to the lattice's, the controller's and the secrets
    backend's buckets: write or read keys, change or remove the stream, or follow it.
    Stream info stays allowed (keyvalue-nats copies the lattice bucket's replicas for the
    buckets it makes)."""
    denied: list[str] = []
    protected = (*lattice_buckets(lattice), WADM_MANIFESTS_BUCKET, WADM_LEADER_BUCKET)
    for bucket in (*protected, SECRETS_BUCKET):
        stream = kv_stream_name(bucket)
        denied.append(kv_subjects(bucket))
        for api in api_prefixes(js_domain):
            denied += [
                f"{api}.{kv_subjects(bucket)}",
                *(f"{api}.STREAM.{op}.{stream}" for op in ("CREATE", "UPDATE", "DELETE", "PURGE")),
                f"{api}.DIRECT.GET.{stream}",
                f"{api}.CONSUMER.CREATE.{stream}",
                f"{api}.*.*.{stream}.>",
                f"{api}.*.*.*.{stream}",
                f"{api}.*.*.*.{stream}.>",
            ]
    return tuple(denied)
