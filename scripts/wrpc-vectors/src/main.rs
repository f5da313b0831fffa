//! Prints reference wRPC value encodings as JSON (tests/unit/wrpc_vectors.json).
//!
//! Regenerate (not run in CI; building takes a few minutes):
//!     cd scripts/wrpc-vectors && cargo run --quiet > ../../tests/unit/wrpc_vectors.json
//!
//! Plain values go through wrpc-transport 0.28.3's `Encode` impls (what wit-bindgen-wrpc code
//! uses). Component values with no Rust counterpart there (enum and variant discriminants,
//! flags, records, resource handles) are written with the same wasm-tokio 0.6.0 calls that
//! wrpc-runtime-wasmtime 0.24.1's `ValEncoder` makes for a `wasmtime::component::Val`:
//! a LEB128 case index, little-endian flag bits in ceil(n/8) bytes, fields concatenated,
//! handles as a byte vector. Each vector names its WIT type; tests/unit/test_wrpc_values.py
//! holds the matching Python value.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder as _;
use wasm_tokio::{CoreVecEncoderBytes, Leb128Encoder};
use wrpc_transport::frame::Outgoing;
use wrpc_transport::Encode;

fn encode<T: Encode<Outgoing>>(value: T) -> BytesMut {
    let mut dst = BytesMut::new();
    let mut enc = T::Encoder::default();
    if enc.encode(value, &mut dst).is_err() {
        panic!("encoding failed");
    }
    dst
}

/// A case index as `ValEncoder` writes it for a type with fewer than 256 cases (a u8 LEB128).
fn case_u8(index: u8) -> BytesMut {
    let mut dst = BytesMut::new();
    Leb128Encoder.encode(index, &mut dst).expect("leb128");
    dst
}

/// The same for 256..65535 cases (a u16 LEB128).
fn case_u16(index: u16) -> BytesMut {
    let mut dst = BytesMut::new();
    Leb128Encoder.encode(index, &mut dst).expect("leb128");
    dst
}

/// Flag bits for `names` set by `set`, in ceil(n/8) little-endian bytes.
fn flags(count: usize, set: &[usize]) -> BytesMut {
    let mut bits = vec![0u8; count.div_ceil(8).max(1)];
    for &i in set {
        bits[i / 8] |= 1 << (i % 8);
    }
    BytesMut::from(&bits[..])
}

fn concat(parts: &[BytesMut]) -> BytesMut {
    let mut dst = BytesMut::new();
    for part in parts {
        dst.extend_from_slice(part);
    }
    dst
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let mut rows: Vec<(&str, &str, BytesMut)> = Vec::new();
    let mut add = |name: &'static str, wit: &'static str, bytes: BytesMut| {
        rows.push((name, wit, bytes));
    };
    add("bool-false", "bool", encode(false));
    add("bool-true", "bool", encode(true));
    add("u8-255", "u8", encode(255u8));
    add("s8-minus-1", "s8", encode(-1i8));
    add("s8-min", "s8", encode(i8::MIN));
    add("u16-127", "u16", encode(127u16));
    add("u16-128", "u16", encode(128u16));
    add("u16-max", "u16", encode(u16::MAX));
    add("s16-63", "s16", encode(63i16));
    add("s16-64", "s16", encode(64i16));
    add("s16-minus-64", "s16", encode(-64i16));
    add("s16-minus-65", "s16", encode(-65i16));
    add("s16-min", "s16", encode(i16::MIN));
    add("s16-max", "s16", encode(i16::MAX));
    add("u32-0", "u32", encode(0u32));
    add("u32-624485", "u32", encode(624_485u32));
    add("u32-max", "u32", encode(u32::MAX));
    add("s32-minus-123456", "s32", encode(-123_456i32));
    add("s32-min", "s32", encode(i32::MIN));
    add("s32-max", "s32", encode(i32::MAX));
    add("u64-max", "u64", encode(u64::MAX));
    add("s64-min", "s64", encode(i64::MIN));
    add("s64-max", "s64", encode(i64::MAX));
    add("s64-minus-1", "s64", encode(-1i64));
    add("f32-1.5", "f32", encode(1.5f32));
    add("f32-minus-inf", "f32", encode(f32::NEG_INFINITY));
    add("f64-0.1", "f64", encode(0.1f64));
    add("f64-minus-2.5", "f64", encode(-2.5f64));
    add("char-a", "char", encode('a'));
    add("char-e-acute", "char", encode('é'));
    add("char-euro", "char", encode('€'));
    add("char-crab", "char", encode('🦀'));
    add("string-empty", "string", encode(""));
    add("string-hello", "string", encode("hello"));
    add("string-unicode", "string", encode("héllo wörld 🦀"));
    add("list-u8", "list<u8>", encode(Bytes::from_static(b"\x00\x01\xff")));
    add("list-u8-200", "list<u8>", encode(Bytes::from(vec![7u8; 200])));
    add("list-u32", "list<u32>", encode(vec![1u32, 300, 70_000]));
    add("list-string", "list<string>", encode(vec!["a".to_string(), "bc".to_string()]));
    add("list-empty", "list<s64>", encode(Vec::<i64>::new()));
    add("option-none", "option<u32>", encode(None::<u32>));
    add("option-some", "option<u32>", encode(Some(300u32)));
    add("option-option-some-none", "option<option<u8>>", encode(Some(None::<u8>)));
    add("result-ok", "result<u32, string>", encode(Ok::<u32, String>(5)));
    add("result-err", "result<u32, string>", encode(Err::<u32, String>("bad".into())));
    add("result-unit-ok", "result", encode(Ok::<(), ()>(())));
    add("result-unit-err", "result", encode(Err::<(), ()>(())));
    add("result-ok-unit-err-string", "result<_, string>", encode(Err::<(), String>("e".into())));
    add("tuple", "tuple<u8, string, s32>", encode((1u8, "x".to_string(), -2i32)));
    add(
        "tuple-nested",
        "tuple<option<string>, list<bool>>",
        encode((Some("y".to_string()), vec![true, false])),
    );
    // record point { x: s32, y: s32, label: string } is encoded as its fields in order.
    add(
        "record-point",
        "record { x: s32, y: s32, label: string }",
        concat(&[encode(-3i32), encode(4i32), encode("p")]),
    );
    // enum color { red, green, blue }
    add("enum-blue", "enum { red, green, blue }", case_u8(2));
    // 130 cases: index 129 needs two LEB128 bytes.
    add("enum-130-case-129", "enum { c0 .. c129 }", case_u8(129));
    // 300 cases: ValEncoder switches to a u16 index; the bytes stay LEB128.
    add("enum-300-case-299", "enum { c0 .. c299 }", case_u16(299));
    // variant shape { none, circle(f64), named(string) }
    add("variant-no-payload", "variant { none, circle(f64), named(string) }", case_u8(0));
    add(
        "variant-circle",
        "variant { none, circle(f64), named(string) }",
        concat(&[case_u8(1), encode(2.0f64)]),
    );
    add(
        "variant-named",
        "variant { none, circle(f64), named(string) }",
        concat(&[case_u8(2), encode("sq")]),
    );
    add("flags-3-none", "flags { a, b, c }", flags(3, &[]));
    add("flags-3-a-c", "flags { a, b, c }", flags(3, &[0, 2]));
    add("flags-9-f8", "flags { f0 .. f8 }", flags(9, &[8]));
    add("flags-20-f0-f19", "flags { f0 .. f19 }", flags(20, &[0, 19]));
    // A resource handle crosses as an opaque byte vector (CoreVecEncoderBytes).
    let mut handle = BytesMut::new();
    CoreVecEncoderBytes.encode(b"\x01\x02\x03\x04", &mut handle).expect("handle");
    add("own-handle", "own<thing>", handle);
    // Parameters travel as one tuple of all parameters.
    add(
        "params-string-u64",
        "params (key: string, delta: u64)",
        encode(("counter".to_string(), 1u64)),
    );

    println!("{{");
    println!(
        "  \"about\": \"wRPC value encodings printed by scripts/wrpc-vectors (wrpc-transport 0.28.3 and wasm-tokio 0.6.0, the versions wasmCloud v1.4.2 locks; layouts of component values as in wrpc-runtime-wasmtime 0.24.1). Regenerate: cd scripts/wrpc-vectors && cargo run --quiet > ../../tests/unit/wrpc_vectors.json\","
    );
    println!("  \"vectors\": [");
    for (i, (name, wit, bytes)) in rows.iter().enumerate() {
        let comma = if i + 1 == rows.len() { "" } else { "," };
        println!(
            "    {{\"name\": \"{name}\", \"wit\": \"{wit}\", \"hex\": \"{}\"}}{comma}",
            hex(bytes)
        );
    }
    println!("  ]");
    println!("}}");
}
