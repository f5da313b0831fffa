"""Application secrets as wadm 0.20 and host 1.4.2 carry them (see docs/security.md).

``protocol``: the wire shapes (wasmcloud-secrets-types), ``xkeys``: NATS curve keys and
their sealed boxes, ``backend``: the NATS KV secrets backend (a process of its own),
``client``: the requests a host or a tool sends it, ``host``: how a host resolves the
``SECRET_`` references in an entity's config and hands the values over.
"""
