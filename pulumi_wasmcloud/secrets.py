"""``Secret``: a value in a lattice's secrets backend, for manifests' secret references.

Manifests name it through a secret policy (``backend``) and the secret's ``key``::

    password = wasmcloud.Secret("redis-password", lattice=lattice,
                                value=config.require_secret("redisPassword"))
    # in the manifest:
    #   policies: [{name: nats-kv, type: policy.secret.wasmcloud.dev/v1alpha1,
    #               properties: {backend: nats-kv}}]
    #   ... secrets: [{name: password, properties: {policy: nats-kv, key: redis-password}}]

``value`` is always a Pulumi secret (encrypted in the state); the provider sends it sealed
to the backend (``python -m host_agent.secrets serve``), which keeps it sealed at rest and
hands it only to hosts, for the components and providers whose manifest names it.
"""

from __future__ import annotations

from typing import Any

import pulumi

from pulumi_wasmcloud.resources import Lattice, OutputProperty, registered, secret_outputs
from pulumi_wasmcloud.schema.resources import SECRET


class Secret(pulumi.CustomResource):
    def __init__(
        self,
        resource_name: str,
        value: pulumi.Input[str],
        lattice: Lattice | None = None,
        key: pulumi.Input[str] | None = None,
        backend: pulumi.Input[str] = "nats-kv",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Args:
        value: The secret value (always a Pulumi secret).
        lattice: The Lattice whose backend keeps it; its outputs give ``natsUrl``,
            ``lattice``, ``credentials``, ``caCert`` and ``clientTls`` (without it: the
            provider's ``wasmcloud:natsUrl``/``lattice``/``credentials``).
        key: The key manifests name (``secrets[].properties.key``); default: the
            resource name.
        backend: The secrets backend's name (a secret policy's ``backend``).
        """
        props: dict[str, Any] = {
            "natsUrl": lattice.nats_url if lattice else None,
            "lattice": lattice.lattice_id if lattice else None,
            "credentials": lattice.credentials if lattice else None,
            "caCert": lattice.ca_cert if lattice else None,  # a secured lattice's CA
            # A lattice on machines' tooling pair and CA (its nodes ask for a certificate).
            "clientTls": lattice.client_tls if lattice else None,
            "backend": backend,
            "key": key if key is not None else resource_name,
            "value": pulumi.Output.secret(value),
        }
        super().__init__(
            SECRET.token,
            resource_name,
            registered(SECRET, props),
            pulumi.ResourceOptions.merge(opts, secret_outputs(SECRET)),
        )

    key = OutputProperty(SECRET, "key", str)
    revision = OutputProperty(SECRET, "revision", int)
