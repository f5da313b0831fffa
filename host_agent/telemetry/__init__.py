"""OpenTelemetry traces and metrics over OTLP/HTTP, off unless configured.

``config`` reads the settings (flags, ``WASMCLOUD_*``/``OTEL_*`` variables, HostData's
``otel_config``) and is pure; ``otel`` holds the SDK's providers and the hooks the request
path calls (wRPC client and server spans with ``traceparent`` in NATS headers, the
http-server provider's request span, per-component invocation metrics).
"""
