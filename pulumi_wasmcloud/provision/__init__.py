"""Provisioning lattice parts onto machines over SSH, shaped like pyinfra.

- ``connector``: one paramiko SSH connection to a machine (the only module with effects
  on the network): key auth, host-key verification, a bastion, timeouts, retries.
- ``facts``: read-only probes (OS, arch, Python, installed versions, file hashes) with
  strict parsers; a probe whose output does not parse is an error naming the fact.
- ``operations``: pure functions from facts and the desired state to the changes still
  needed (commands plus a sentence for preview); ``apply`` runs them on a connection.
- ``nats_config`` renders a nats-server config; ``service`` runs a process as a systemd
  unit or, without systemd, under a small supervisor that restarts it on failure.
- ``parallel.on_machines``: the same work on many machines at once, a failure on one
  reported by name while the others go on.

Plain Python: the Pulumi provider calls it, it never imports pulumi.
"""

from pulumi_wasmcloud.provision.connector import (
    AuthenticationFailed,
    CommandFailed,
    CommandResult,
    CommandTimedOut,
    ConnectionLost,
    HostKeyRefused,
    ProvisionError,
    SshConnection,
    SshTarget,
    Unreachable,
)

__all__ = [
    "AuthenticationFailed",
    "CommandFailed",
    "CommandResult",
    "CommandTimedOut",
    "ConnectionLost",
    "HostKeyRefused",
    "ProvisionError",
    "SshConnection",
    "SshTarget",
    "Unreachable",
]
