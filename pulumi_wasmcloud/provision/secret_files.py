"""Where a secured lattice's secret files go on a machine (paths only; no key material
here, and nothing imported: the planners that write these files stay plain Python).

Every file is 0600, owned by root (who runs our services), written over the SSH
channel's stdin: its content is never in a command line.
"""

from __future__ import annotations

CONFIG_DIR = "/etc/wasmcloud"
# nats-server's files, beside its config.
NATS_CA_FILE = f"{CONFIG_DIR}/nats-server.ca.pem"
NATS_CERT_FILE = f"{CONFIG_DIR}/nats-server.cert.pem"
NATS_KEY_FILE = f"{CONFIG_DIR}/nats-server.key.pem"
LEAF_CREDS_FILE = f"{CONFIG_DIR}/nats-server.leaf.creds"
NATS_FILES = (NATS_CA_FILE, NATS_CERT_FILE, NATS_KEY_FILE, LEAF_CREDS_FILE)
# An agent service's files are ``<service>.<suffix>`` in CONFIG_DIR.
CREDS_SUFFIX = "creds"
CA_SUFFIX = "ca.pem"
CERT_SUFFIX = "cert.pem"
KEY_SUFFIX = "key.pem"
ISSUER_SUFFIX = "issuer.json"
AGENT_SUFFIXES = (CREDS_SUFFIX, CA_SUFFIX, CERT_SUFFIX, KEY_SUFFIX, ISSUER_SUFFIX)


def agent_file(service: str, suffix: str) -> str:
    """Where an agent service's file is: ``/etc/wasmcloud/host-edge-1.cert.pem``."""
    return f"{CONFIG_DIR}/{service}.{suffix}"
