"""http-client pieces without a lattice: the wire of wrpc:http/outgoing-handler, the
provider's link config, and the draft-vs-final check for wasi:http/outgoing-handler."""

from __future__ import annotations

import asyncio
import re
from typing import cast

import pytest

from host_agent.host.links import LinkIndex
from host_agent.host.outgoing_http import LinkedOutgoingHttp
from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.lattice.protocol import Link
from host_agent.providers.builtin import resolve_provider
from host_agent.providers.http_client import DEFAULT_MAX_BODY, ClientConfig, ConfigError
from host_agent.runtime.instance import SERVED
from host_agent.runtime.provider_versions import runtime_version_mismatch as version_mismatch
from host_agent.wrpc.http_outgoing import (
    HttpErrorCode,
    RequestTimeouts,
    decode_handle_params,
    decode_handle_result,
    encode_handle_params,
    encode_handle_result,
)
from host_agent.wrpc.transport import WrpcClient


def test_params_carry_the_request_and_its_timeouts() -> None:
    request = HttpRequest("POST", "/a?b=1", "http", "127.0.0.1:81", [("x", b"1")], b"body")
    timeouts = RequestTimeouts(connect=0.25, first_byte=None, between_bytes=2.0)
    assert decode_handle_params(encode_handle_params(request, timeouts)) == (request, timeouts)
    empty = HttpRequest("GET", "/", "https", "example.test")
    assert decode_handle_params(encode_handle_params(empty, None)) == (empty, None)


@pytest.mark.parametrize(
    "result",
    [
        HttpResponse(201, [("a", b"b")], b"created"),
        HttpErrorCode("connection-refused"),
        HttpErrorCode("HTTP-response-body-size", 2000),
        HttpErrorCode("HTTP-request-body-size", None),
        HttpErrorCode("internal-error", "why"),
        HttpErrorCode("DNS-error", ("NXDOMAIN", 3)),
        HttpErrorCode("TLS-alert-received", (40, "handshake")),
        HttpErrorCode("HTTP-request-header-size", ("x-big", 9000)),
    ],
)
def test_results_round_trip(result: HttpResponse | HttpErrorCode) -> None:
    assert decode_handle_result(encode_handle_result(result)) == result


def test_link_config_is_parsed_strictly_naming_the_value_and_the_fix() -> None:
    config = ClientConfig.parse({"first_byte_timeout_ms": "250", "unrelated": "x"}, "link")
    assert config.first_byte == 0.25 and config.max_body_bytes == DEFAULT_MAX_BODY
    for name, value in [
        ("max_body_bytes", "lots"),
        ("max_body_bytes", "0"),
        ("connect_timeout_ms", "1.5"),
        ("between_bytes_timeout_ms", "-3"),
    ]:
        refusal = re.escape(f"{name}='{value}' is not a positive whole")
        with pytest.raises(ConfigError, match=refusal):
            ClientConfig.parse({name: value}, "link")
    with pytest.raises(ConfigError, match=r'load_native_certs=.yes. must be "true" or "false"'):
        ClientConfig.parse({"load_native_certs": "yes"}, "link")


def test_a_component_built_against_another_outgoing_handler_is_refused_at_link_time() -> None:
    link = Link(
        source_id="fetcher",
        target="client",
        name="default",
        wit_namespace="wasi",
        wit_package="http",
        interfaces=["outgoing-handler"],
    )
    problem = version_mismatch({"wasi:http/outgoing-handler": "0.3.0-rc-2025-08-15"}, link)
    assert problem is not None
    assert "wasi:http/outgoing-handler@0.3.0-rc-2025-08-15" in problem
    assert "serve wasi:http/outgoing-handler@0.2" in problem
    assert version_mismatch({"wasi:http/outgoing-handler": "0.2.12"}, link) is None


def test_the_upstream_image_names_the_builtin_provider() -> None:
    assert resolve_provider("ghcr.io/wasmcloud/http-client:0.12.1").name == "http-client"
    assert "wasi:http/outgoing-handler" in SERVED  # no longer a trapped import


def test_a_component_without_a_link_hears_which_link_to_put() -> None:
    loop = asyncio.new_event_loop()
    try:
        client = LinkedOutgoingHttp("fetcher", LinkIndex, cast(WrpcClient, None), loop)
        result = client.send(HttpRequest("GET", "/", "http", "127.0.0.1:1"), None)
    finally:
        loop.close()
    assert result == HttpErrorCode(
        "internal-error",
        "fetcher has no link for wasi:http/outgoing-handler; put a link from it to an "
        "http-client provider",
    )
