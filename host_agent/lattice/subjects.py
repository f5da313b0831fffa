"""NATS subjects of the wasmCloud 1.x control interface and event stream (host 1.4.2)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CTL_PREFIX = "wasmbus.ctl"
EVENT_PREFIX = "wasmbus.evt"
DEFAULT_LATTICE = "default"


@dataclass(frozen=True)
class CtlSubjects:
    """``{prefix}.v1.{lattice}.<operation>`` subjects for one lattice."""

    lattice: str = DEFAULT_LATTICE
    prefix: str = DEFAULT_CTL_PREFIX

    @property
    def base(self) -> str:
        return f"{self.prefix}.v1.{self.lattice}"

    def __call__(self, *tokens: str) -> str:
        return ".".join((self.base, *tokens))

    # Requests a client sends -------------------------------------------------------
    def host_ping(self) -> str:
        return self("host", "ping")

    def host_get(self, host_id: str) -> str:
        return self("host", "get", host_id)

    def host_stop(self, host_id: str) -> str:
        return self("host", "stop", host_id)

    def component_scale(self, host_id: str) -> str:
        return self("component", "scale", host_id)

    def component_update(self, host_id: str) -> str:
        return self("component", "update", host_id)

    def provider_start(self, host_id: str) -> str:
        return self("provider", "start", host_id)

    def provider_stop(self, host_id: str) -> str:
        return self("provider", "stop", host_id)

    def label_put(self, host_id: str) -> str:
        return self("label", "put", host_id)

    def label_del(self, host_id: str) -> str:
        return self("label", "del", host_id)

    def link_put(self) -> str:
        return self("link", "put")

    def link_del(self) -> str:
        return self("link", "del")

    def link_get(self) -> str:
        return self("link", "get")

    def claims_get(self) -> str:
        return self("claims", "get")

    def config_put(self, name: str) -> str:
        return self("config", "put", name)

    def config_get(self, name: str) -> str:
        return self("config", "get", name)

    def config_del(self, name: str) -> str:
        return self("config", "del", name)

    # What a host subscribes to: (subject, queue group or "") ------------------------
    def host_subscriptions(self, host_id: str) -> list[tuple[str, str]]:
        """Plain subscriptions reach every host; queue groups make exactly one host answer
        lattice-wide requests (same group names as the Rust host, so both can coexist)."""
        return [
            (self("registry", "put"), ""),
            (self("host", "ping"), ""),
            (self("*", "auction"), ""),
            (self("link", "*"), self("link")),
            (self("claims", "get"), self("claims")),
            (self("component", "*", host_id), ""),
            (self("provider", "*", host_id), ""),
            (self("label", "*", host_id), ""),
            (self("host", "*", host_id), ""),
            (self("config", ">"), self("config")),
        ]

    def operation(self, subject: str) -> list[str]:
        """The tokens after the lattice, e.g. ``["component", "scale", "N..."]``."""
        head = self.base + "."
        return subject[len(head) :].split(".") if subject.startswith(head) else []

    def wildcard(self) -> str:
        """Every control subject of the lattice."""
        return self(">")


def event_subject(lattice: str, event: str) -> str:
    return f"{EVENT_PREFIX}.{lattice}.{event}"


# The events a host follows to know which provider each other host runs (a link to one is
# judged by the WIT it serves): host/lattice_providers.py.
PROVIDER_EVENTS = ("provider_started", "provider_stopped", "host_heartbeat", "host_stopped")


def links_bucket(lattice: str) -> str:
    return f"LATTICEDATA_{lattice}"


def config_bucket(lattice: str) -> str:
    return f"CONFIGDATA_{lattice}"


def component_spec_key(source_id: str) -> str:
    return f"COMPONENT_{source_id}"


# wadm (the lattice controller) --------------------------------------------------------
WADM_API_PREFIX = "wadm.api"
WADM_API_QUEUE = "wadm_server"
WADM_STATUS_PREFIX = "wadm.status"
WADM_MANIFESTS_BUCKET = "wadm_manifests"
WADM_STATUS_STREAM = "wadm_status"
WADM_LEADER_BUCKET = "wadm_leader"


def wadm_api_subject(lattice: str, operation: str, name: str | None = None) -> str:
    """``wadm.api.{lattice}.model.{operation}[.{name}]``."""
    tail = f".{name}" if name else ""
    return f"{WADM_API_PREFIX}.{lattice}.model.{operation}{tail}"


def wadm_status_subject(lattice: str, app: str) -> str:
    return f"{WADM_STATUS_PREFIX}.{lattice}.{app}"


def events_wildcard(lattice: str) -> str:
    return f"{EVENT_PREFIX}.{lattice}.>"


def wadm_api_wildcard(lattice: str) -> str:
    return f"{WADM_API_PREFIX}.{lattice}.>"


def wadm_status_wildcard(lattice: str) -> str:
    return f"{WADM_STATUS_PREFIX}.{lattice}.>"


# Host logs (not upstream: a 1.x host logs to stderr and OTLP only) ---------------------
HOST_LOG_PREFIX = "wasmbus.log"


def host_log_subject(lattice: str, host_id: str) -> str:
    """``wasmbus.log.{lattice}.{host_id}``: where a host publishes its log records
    (``host_agent.lattice.host_logs``), for ``wasmcloud logs`` to follow."""
    return f"{HOST_LOG_PREFIX}.{lattice}.{host_id}"


def host_log_wildcard(lattice: str) -> str:
    """Every host's log records in ``lattice``."""
    return host_log_subject(lattice, "*")


# Replies: nats-py's, wash's and the Rust clients' request inboxes ----------------------
INBOX_WILDCARD = "_INBOX.>"


# wRPC and provider subjects -------------------------------------------------------------
WRPC_VERSION = "0.0.1"
PROVIDER_RPC_PREFIX = "wasmbus.rpc"


def wrpc_wildcard(lattice: str, entity_id: str = "*") -> str:
    """Every wRPC invocation of ``entity_id`` (a component or provider id; ``*`` for any):
    ``{lattice}.{entity_id}.wrpc.{version}.{instance}.{function}``."""
    return f"{lattice}.{entity_id}.wrpc.>"


def provider_rpc_subject(lattice: str, provider_id: str, operation: str) -> str:
    """``wasmbus.rpc.{lattice}.{provider_id}.{operation}`` (health, linkdefs.put, ...)."""
    return f"{PROVIDER_RPC_PREFIX}.{lattice}.{provider_id}.{operation}"


def provider_rpc_wildcard(lattice: str, provider_id: str = "*") -> str:
    return provider_rpc_subject(lattice, provider_id, ">")


# JetStream ------------------------------------------------------------------------------
def jetstream_api_prefix(domain: str | None = None) -> str:
    """``$JS.API``, or ``$JS.{domain}.API`` for a JetStream domain (a leaf reaching its hub)."""
    return f"$JS.{domain}.API" if domain else "$JS.API"


def kv_stream_name(bucket: str) -> str:
    """The stream that holds a KV bucket (JetStream's naming)."""
    return f"KV_{bucket}"


def kv_subjects(bucket: str) -> str:
    """Every key of ``bucket``."""
    return f"$KV.{bucket}.>"


# Link grants (per-link authorization: host_agent/security/grants.py) ------------------
LINK_GRANT_QUEUE = "wadm_grant"


def link_grant_subject(lattice: str) -> str:
    """Where hosts ask a controller for the user JWT of their outgoing wRPC calls."""
    return f"wasmbus.grant.{lattice}"


# Application secrets (secrets API v1alpha1: host_agent/secrets) ------------------------
SECRETS_SUBJECT_PREFIX = "wasmcloud.secrets"
SECRETS_API_VERSION = "v1alpha1"
SECRETS_BUCKET = "WASMCLOUD_SECRETS"  # the NATS KV backend's bucket (values sealed)


def secrets_subject(backend: str, operation: str, prefix: str = SECRETS_SUBJECT_PREFIX) -> str:
    """``wasmcloud.secrets.v1alpha1.{backend}.{operation}``: ``server_xkey`` and ``get``
    (hosts), ``put_secret``/``delete_secret`` (tooling). Not lattice-scoped upstream: the
    NATS account separates lattices."""
    return f"{prefix}.{SECRETS_API_VERSION}.{backend}.{operation}"


def secrets_wildcard(backend: str = "*", prefix: str = SECRETS_SUBJECT_PREFIX) -> str:
    """Everything a backend answers (its queue subscription)."""
    return secrets_subject(backend, ">", prefix)
