"""wRPC encoding: integers, HTTP requests/responses and keyvalue results on the wire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_agent.interfaces.http import HttpRequest, HttpResponse
from host_agent.interfaces.keyvalue import KeyValueError
from host_agent.wrpc import keyvalue as kv
from host_agent.wrpc.codec import DecodeError, Reader, Writer, read_stream_frames, stream_frames
from host_agent.wrpc.http import (
    BODY_PATH,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    pending_request_paths,
    pending_response_paths,
)
from host_agent.wrpc.transport import Payload, invocation_subject


def test_integers_use_leb128_as_wrpc_does() -> None:
    assert Writer().u(300).finish() == b"\xac\x02"
    assert Writer().s(-2).finish() == b"\x7e"
    assert Writer().string("hi").finish() == b"\x02hi"


@given(st.integers(0, 2**64 - 1), st.integers(-(2**63), 2**63 - 1))
def test_leb128_round_trips(unsigned: int, signed: int) -> None:
    reader = Reader(Writer().u(unsigned).s(signed).finish())
    assert (reader.u(), reader.s()) == (unsigned, signed)
    assert reader.at_end()


def test_truncated_values_are_decode_errors_not_crashes() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x05ab").string()
    with pytest.raises(DecodeError):
        Reader(b"\x80").u()


def test_invocation_subject_matches_wasmcloud_layout() -> None:
    subject = invocation_subject("default", "counter", "wrpc:http/incoming-handler@0.1.0", "handle")
    assert subject == "default.counter.wrpc.0.0.1.wrpc:http/incoming-handler@0.1.0.handle"


headers = st.lists(
    st.tuples(st.sampled_from(["accept", "x-a", "content-type"]), st.binary(max_size=20)),
    max_size=5,
)


@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "PURGE"]),
    path=st.text(min_size=1, max_size=30).map(lambda p: "/" + p),
    headers=headers,
    body=st.binary(max_size=300),
)
def test_http_request_round_trips(
    method: str, path: str, headers: list[tuple[str, bytes]], body: bytes
) -> None:
    request = HttpRequest(method, path, "http", "example:8080", headers, body)
    payload = encode_request(request)
    assert pending_request_paths(payload.data) == ([] if body else [BODY_PATH])
    decoded = decode_request(payload)
    assert decoded.body == body and decoded.method == method and decoded.path_with_query == path
    # Repeated header names are grouped on the wire; per-name order is kept.
    for name in {n for n, _ in headers}:
        assert [v for n, v in decoded.headers if n == name] == [v for n, v in headers if n == name]


def test_empty_body_is_pending_with_its_end_on_the_nested_path() -> None:
    payload = encode_response(HttpResponse(204))
    assert payload.data[:2] == b"\x00\x00"  # result::ok, then a pending stream
    assert payload.nested == {BODY_PATH: b"\x00"}
    assert pending_response_paths(payload.data) == [BODY_PATH]
    assert decode_response(payload) == HttpResponse(204, [], b"")


def test_response_body_in_chunks_on_the_nested_path_is_reassembled() -> None:
    response = encode_response(HttpResponse(200, [("a", b"1")], b""))
    chunks = stream_frames(b"x" * 200_000, chunk=65_536)
    assert read_stream_frames(chunks) == b"x" * 200_000
    decoded = decode_response(Payload(response.data, {BODY_PATH: chunks}))
    assert decoded.body == b"x" * 200_000 and decoded.status == 200


def test_error_code_result_becomes_a_500_with_the_detail() -> None:
    data = Writer().u8(1).u(38).option_string("boom").finish()  # err(internal-error("boom"))
    response = decode_response(Payload(data))
    assert response.status == 500 and b"boom" in response.body


def test_keyvalue_results_round_trip() -> None:
    assert kv.decode_get(kv.encode_get(b"7")) == b"7"
    assert kv.decode_get(kv.encode_get(None)) is None
    assert kv.decode_increment(kv.encode_increment(42)) == 42
    assert kv.decode_list_keys(kv.encode_list_keys((["a", "b"], 5))) == (["a", "b"], 5)
    assert kv.read_bucket_key_delta(kv.bucket_key_delta("default", "hello", 1)) == (
        "default",
        "hello",
        1,
    )


@pytest.mark.parametrize("kind", ["no-such-store", "access-denied", "other"])
def test_keyvalue_errors_round_trip(kind: str) -> None:
    with pytest.raises(KeyValueError) as raised:
        kv.decode_exists(kv.encode_error(KeyValueError(kind, "redis down")))
    assert raised.value.kind == kind
    if kind == "other":
        assert raised.value.message == "redis down"
