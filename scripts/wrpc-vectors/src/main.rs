//! Prints reference wRPC value encodings as JSON (tests/unit/wrpc_vectors.json).
//!
//! Regenerate (not run in CI; the first build compiles wasmtime, ~10 minutes):
//!     cd scripts/wrpc-vectors && cargo run --quiet > ../../tests/unit/wrpc_vectors.json
//!
//! Every component value is encoded by wrpc-runtime-wasmtime 0.24.1's `ValEncoder`, the code a
//! wasmCloud 1.4.2 host runs to send a component's values: the types come from a small
//! component (WAT below) compiled by wasmtime 25.0.3, the values are `wasmtime::component::Val`.
//! Where a plain Rust type exists, the bytes are also checked against wrpc-transport 0.28.3's
//! `Encode` impls (what wit-bindgen-wrpc providers send); the run panics if they differ.
//! A resource handle's bytes come from wasm-tokio's `CoreVecEncoderBytes`, which `ValEncoder`
//! calls for a handle that arrived over wRPC (building one needs a live invocation).

use anyhow::{bail, Context as _};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder as _;
use wasm_tokio::CoreVecEncoderBytes;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ResourceTable, Type, Val};
use wasmtime::{AsContextMut as _, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiView};
use wrpc_runtime_wasmtime::{SharedResourceTable, ValEncoder, WrpcView};
use wrpc_transport::frame::{Incoming, Outgoing};
use wrpc_transport::{Encode, Invoke};

/// An `Invoke` that is never called: `ValEncoder` needs a store whose data is a `WrpcView`.
struct NoInvoke;

impl Invoke for NoInvoke {
    type Context = ();
    type Outgoing = Outgoing;
    type Incoming = Incoming;

    #[allow(clippy::manual_async_fn)] // the trait asks for `impl Future + Send`
    fn invoke<P>(
        &self,
        _cx: Self::Context,
        _instance: &str,
        _func: &str,
        _params: Bytes,
        _paths: impl AsRef<[P]> + Send,
    ) -> impl core::future::Future<Output = anyhow::Result<(Self::Outgoing, Self::Incoming)>> + Send
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        async { bail!("this program makes no invocations") }
    }
}

struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    shared: SharedResourceTable,
    client: NoInvoke,
}

impl WasiView for Ctx {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
    fn ctx(&mut self) -> &mut WasiCtx {
        &mut self.wasi
    }
}

impl WrpcView for Ctx {
    type Invoke = NoInvoke;
    fn client(&self) -> &NoInvoke {
        &self.client
    }
    fn shared_resources(&mut self) -> &mut SharedResourceTable {
        &mut self.shared
    }
}

/// Named types live in the instance; each vector's type is a parameter of its own function.
const NAMED_TYPES: &str = r#"
    (type $point' (record (field "x" s32) (field "y" s32) (field "label" string)))
    (export "point" (type $point (eq $point')))
    (type $color' (enum "red" "green" "blue"))
    (export "color" (type $color (eq $color')))
    (type $shape' (variant (case "none") (case "circle" f64) (case "named" string)))
    (export "shape" (type $shape (eq $shape')))
    (type $abc' (flags "a" "b" "c"))
    (export "abc" (type $abc (eq $abc')))
"#;

struct Vector {
    name: &'static str,
    wit: &'static str,
    /// WAT parameter types (several for a parameter list).
    wat: Vec<String>,
    values: Vec<Val>,
    /// The same value through wrpc-transport's `Encode`, where a Rust type exists.
    transport: Option<BytesMut>,
}

fn encode<T: Encode<Outgoing>>(value: T) -> Option<BytesMut> {
    let mut dst = BytesMut::new();
    let mut enc = T::Encoder::default();
    enc.encode(value, &mut dst)
        .ok()
        .expect("wrpc-transport encoding failed");
    Some(dst)
}

fn v(
    name: &'static str,
    wit: &'static str,
    wat: &str,
    value: Val,
    transport: Option<BytesMut>,
) -> Vector {
    Vector {
        name,
        wit,
        wat: vec![wat.to_string()],
        values: vec![value],
        transport,
    }
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

fn some(value: Val) -> Option<Box<Val>> {
    Some(Box::new(value))
}

fn vectors() -> Vec<Vector> {
    let enum130 = format!("(enum {})", quoted(&names("c", 130)));
    let enum300 = format!("(enum {})", quoted(&names("c", 300)));
    let flags9 = format!("(flags {})", quoted(&names("f", 9)));
    let flags20 = format!("(flags {})", quoted(&names("f", 20)));
    let u8s = |bytes: &[u8]| Val::List(bytes.iter().map(|b| Val::U8(*b)).collect());
    let s = |text: &str| Val::String(text.to_string());
    vec![
        v(
            "bool-false",
            "bool",
            "bool",
            Val::Bool(false),
            encode(false),
        ),
        v("bool-true", "bool", "bool", Val::Bool(true), encode(true)),
        v("u8-255", "u8", "u8", Val::U8(255), encode(255u8)),
        v("s8-minus-1", "s8", "s8", Val::S8(-1), encode(-1i8)),
        v("s8-min", "s8", "s8", Val::S8(i8::MIN), encode(i8::MIN)),
        v("u16-127", "u16", "u16", Val::U16(127), encode(127u16)),
        v("u16-128", "u16", "u16", Val::U16(128), encode(128u16)),
        v(
            "u16-max",
            "u16",
            "u16",
            Val::U16(u16::MAX),
            encode(u16::MAX),
        ),
        v("s16-63", "s16", "s16", Val::S16(63), encode(63i16)),
        v("s16-64", "s16", "s16", Val::S16(64), encode(64i16)),
        v("s16-minus-64", "s16", "s16", Val::S16(-64), encode(-64i16)),
        v("s16-minus-65", "s16", "s16", Val::S16(-65), encode(-65i16)),
        v(
            "s16-min",
            "s16",
            "s16",
            Val::S16(i16::MIN),
            encode(i16::MIN),
        ),
        v(
            "s16-max",
            "s16",
            "s16",
            Val::S16(i16::MAX),
            encode(i16::MAX),
        ),
        v("u32-0", "u32", "u32", Val::U32(0), encode(0u32)),
        v(
            "u32-624485",
            "u32",
            "u32",
            Val::U32(624_485),
            encode(624_485u32),
        ),
        v(
            "u32-max",
            "u32",
            "u32",
            Val::U32(u32::MAX),
            encode(u32::MAX),
        ),
        v(
            "s32-minus-123456",
            "s32",
            "s32",
            Val::S32(-123_456),
            encode(-123_456i32),
        ),
        v(
            "s32-min",
            "s32",
            "s32",
            Val::S32(i32::MIN),
            encode(i32::MIN),
        ),
        v(
            "s32-max",
            "s32",
            "s32",
            Val::S32(i32::MAX),
            encode(i32::MAX),
        ),
        v(
            "u64-max",
            "u64",
            "u64",
            Val::U64(u64::MAX),
            encode(u64::MAX),
        ),
        v(
            "s64-min",
            "s64",
            "s64",
            Val::S64(i64::MIN),
            encode(i64::MIN),
        ),
        v(
            "s64-max",
            "s64",
            "s64",
            Val::S64(i64::MAX),
            encode(i64::MAX),
        ),
        v("s64-minus-1", "s64", "s64", Val::S64(-1), encode(-1i64)),
        v("f32-1.5", "f32", "f32", Val::Float32(1.5), encode(1.5f32)),
        v(
            "f32-minus-inf",
            "f32",
            "f32",
            Val::Float32(f32::NEG_INFINITY),
            encode(f32::NEG_INFINITY),
        ),
        v("f64-0.1", "f64", "f64", Val::Float64(0.1), encode(0.1f64)),
        v(
            "f64-minus-2.5",
            "f64",
            "f64",
            Val::Float64(-2.5),
            encode(-2.5f64),
        ),
        v("char-a", "char", "char", Val::Char('a'), encode('a')),
        v("char-e-acute", "char", "char", Val::Char('é'), encode('é')),
        v("char-euro", "char", "char", Val::Char('€'), encode('€')),
        v("char-crab", "char", "char", Val::Char('🦀'), encode('🦀')),
        v("string-empty", "string", "string", s(""), encode("")),
        v(
            "string-hello",
            "string",
            "string",
            s("hello"),
            encode("hello"),
        ),
        v(
            "string-unicode",
            "string",
            "string",
            s("héllo wörld 🦀"),
            encode("héllo wörld 🦀"),
        ),
        v(
            "list-u8",
            "list<u8>",
            "(list u8)",
            u8s(b"\x00\x01\xff"),
            encode(Bytes::from_static(b"\x00\x01\xff")),
        ),
        v(
            "list-u8-200",
            "list<u8>",
            "(list u8)",
            u8s(&[7u8; 200]),
            encode(Bytes::from(vec![7u8; 200])),
        ),
        v(
            "list-u32",
            "list<u32>",
            "(list u32)",
            Val::List(vec![Val::U32(1), Val::U32(300), Val::U32(70_000)]),
            encode(vec![1u32, 300, 70_000]),
        ),
        v(
            "list-string",
            "list<string>",
            "(list string)",
            Val::List(vec![s("a"), s("bc")]),
            encode(vec!["a".to_string(), "bc".to_string()]),
        ),
        v(
            "list-empty",
            "list<s64>",
            "(list s64)",
            Val::List(vec![]),
            encode(Vec::<i64>::new()),
        ),
        v(
            "option-none",
            "option<u32>",
            "(option u32)",
            Val::Option(None),
            encode(None::<u32>),
        ),
        v(
            "option-some",
            "option<u32>",
            "(option u32)",
            Val::Option(some(Val::U32(300))),
            encode(Some(300u32)),
        ),
        v(
            "option-option-some-none",
            "option<option<u8>>",
            "(option (option u8))",
            Val::Option(some(Val::Option(None))),
            encode(Some(None::<u8>)),
        ),
        v(
            "result-ok",
            "result<u32, string>",
            "(result u32 (error string))",
            Val::Result(Ok(some(Val::U32(5)))),
            encode(Ok::<u32, String>(5)),
        ),
        v(
            "result-err",
            "result<u32, string>",
            "(result u32 (error string))",
            Val::Result(Err(some(s("bad")))),
            encode(Err::<u32, String>("bad".into())),
        ),
        v(
            "result-unit-ok",
            "result",
            "(result)",
            Val::Result(Ok(None)),
            encode(Ok::<(), ()>(())),
        ),
        v(
            "result-unit-err",
            "result",
            "(result)",
            Val::Result(Err(None)),
            encode(Err::<(), ()>(())),
        ),
        v(
            "result-ok-unit-err-string",
            "result<_, string>",
            "(result (error string))",
            Val::Result(Err(some(s("e")))),
            encode(Err::<(), String>("e".into())),
        ),
        v(
            "tuple",
            "tuple<u8, string, s32>",
            "(tuple u8 string s32)",
            Val::Tuple(vec![Val::U8(1), s("x"), Val::S32(-2)]),
            encode((1u8, "x".to_string(), -2i32)),
        ),
        v(
            "tuple-nested",
            "tuple<option<string>, list<bool>>",
            "(tuple (option string) (list bool))",
            Val::Tuple(vec![
                Val::Option(some(s("y"))),
                Val::List(vec![Val::Bool(true), Val::Bool(false)]),
            ]),
            encode((Some("y".to_string()), vec![true, false])),
        ),
        v(
            "record-point",
            "record { x: s32, y: s32, label: string }",
            "$point",
            Val::Record(vec![
                ("x".into(), Val::S32(-3)),
                ("y".into(), Val::S32(4)),
                ("label".into(), s("p")),
            ]),
            encode((-3i32, 4i32, "p".to_string())),
        ),
        v(
            "enum-blue",
            "enum { red, green, blue }",
            "$color",
            Val::Enum("blue".into()),
            None,
        ),
        v(
            "enum-130-case-129",
            "enum { c0 .. c129 }",
            &enum130,
            Val::Enum("c129".into()),
            None,
        ),
        v(
            "enum-300-case-299",
            "enum { c0 .. c299 }",
            &enum300,
            Val::Enum("c299".into()),
            None,
        ),
        v(
            "variant-no-payload",
            "variant { none, circle(f64), named(string) }",
            "$shape",
            Val::Variant("none".into(), None),
            None,
        ),
        v(
            "variant-circle",
            "variant { none, circle(f64), named(string) }",
            "$shape",
            Val::Variant("circle".into(), some(Val::Float64(2.0))),
            None,
        ),
        v(
            "variant-named",
            "variant { none, circle(f64), named(string) }",
            "$shape",
            Val::Variant("named".into(), some(s("sq"))),
            None,
        ),
        v(
            "flags-3-none",
            "flags { a, b, c }",
            "$abc",
            Val::Flags(vec![]),
            None,
        ),
        v(
            "flags-3-a-c",
            "flags { a, b, c }",
            "$abc",
            Val::Flags(vec!["a".into(), "c".into()]),
            None,
        ),
        v(
            "flags-9-f8",
            "flags { f0 .. f8 }",
            &flags9,
            Val::Flags(vec!["f8".into()]),
            None,
        ),
        v(
            "flags-20-f0-f19",
            "flags { f0 .. f19 }",
            &flags20,
            Val::Flags(vec!["f0".into(), "f19".into()]),
            None,
        ),
        v(
            "list-of-records",
            "list<record { x: s32, y: s32, label: string }>",
            "(list $point)",
            Val::List(vec![
                Val::Record(vec![
                    ("x".into(), Val::S32(1)),
                    ("y".into(), Val::S32(-1)),
                    ("label".into(), s("a")),
                ]),
                Val::Record(vec![
                    ("x".into(), Val::S32(200)),
                    ("y".into(), Val::S32(0)),
                    ("label".into(), s("")),
                ]),
            ]),
            None,
        ),
        v(
            "option-variant",
            "option<variant { none, circle(f64), named(string) }>",
            "(option $shape)",
            Val::Option(some(Val::Variant("circle".into(), some(Val::Float64(0.5))))),
            None,
        ),
        v(
            "result-enum-flags-err",
            "result<enum { red, green, blue }, flags { a, b, c }>",
            "(result $color (error $abc))",
            Val::Result(Err(some(Val::Flags(vec!["b".into()])))),
            None,
        ),
        Vector {
            name: "params-string-u64",
            wit: "params (key: string, delta: u64)",
            wat: vec!["string".into(), "u64".into()],
            values: vec![s("counter"), Val::U64(1)],
            transport: encode(("counter".to_string(), 1u64)),
        },
    ]
}

/// Enums and flags with many names are not exported types: give them one each.
fn wat_type(index: usize, wat: &str, extra: &mut String) -> String {
    if wat.starts_with("(enum") || wat.starts_with("(flags") {
        extra.push_str(&format!(
            "(type $x{index}' {wat}) (export \"x{index}\" (type $x{index} (eq $x{index}')))\n"
        ));
        format!("$x{index}")
    } else {
        wat.to_string()
    }
}

fn main() -> anyhow::Result<()> {
    let vectors = vectors();
    let mut extra = String::new();
    let mut funcs = String::new();
    for (i, vector) in vectors.iter().enumerate() {
        let params: Vec<String> = vector
            .wat
            .iter()
            .enumerate()
            .map(|(j, wat)| format!("(param \"p{j}\" {})", wat_type(i * 10 + j, wat, &mut extra)))
            .collect();
        funcs.push_str(&format!("(export \"f{i}\" (func {}))\n", params.join(" ")));
    }
    let wat = format!(
        "(component (import \"example:vectors/types\" (instance {NAMED_TYPES} {extra} {funcs})))"
    );

    let engine = Engine::default();
    let component =
        Component::new(&engine, &wat).context("failed to compile the type component")?;
    let mut store = Store::new(
        &engine,
        Ctx {
            table: ResourceTable::new(),
            wasi: WasiCtxBuilder::new().build(),
            shared: SharedResourceTable::default(),
            client: NoInvoke,
        },
    );
    let component_type = component.component_type();
    let (_, instance) = component_type
        .imports(&engine)
        .next()
        .context("no import")?;
    let ComponentItem::ComponentInstance(instance) = instance else {
        bail!("not an instance")
    };

    let mut rows = Vec::new();
    for (i, vector) in vectors.iter().enumerate() {
        let Some(ComponentItem::ComponentFunc(func)) =
            instance.get_export(&engine, &format!("f{i}"))
        else {
            bail!("no function for {}", vector.name)
        };
        let types: Vec<Type> = func.params().collect();
        let mut dst = BytesMut::new();
        for (ty, value) in types.iter().zip(&vector.values) {
            let mut enc = ValEncoder::<Ctx, Outgoing>::new(store.as_context_mut(), ty, &[]);
            enc.encode(value, &mut dst)
                .with_context(|| format!("ValEncoder failed on {}", vector.name))?;
        }
        if let Some(transport) = &vector.transport {
            assert_eq!(
                &dst[..],
                &transport[..],
                "{}: ValEncoder and wrpc-transport disagree",
                vector.name
            );
        }
        rows.push((vector.name, vector.wit, dst));
    }
    let mut handle = BytesMut::new();
    CoreVecEncoderBytes.encode(b"\x01\x02\x03\x04", &mut handle)?;
    rows.push(("own-handle", "own<thing>", handle));

    println!("{{");
    println!(
        "  \"about\": \"wRPC value encodings printed by scripts/wrpc-vectors: wrpc-runtime-wasmtime 0.24.1's ValEncoder on wasmtime 25.0.3 component values (the versions wasmCloud v1.4.2 locks), checked against wrpc-transport 0.28.3's Encode where a Rust type exists; own-handle from wasm-tokio 0.6.0's CoreVecEncoderBytes. Regenerate: cd scripts/wrpc-vectors && cargo run --quiet > ../../tests/unit/wrpc_vectors.json\","
    );
    println!("  \"vectors\": [");
    for (i, (name, wit, bytes)) in rows.iter().enumerate() {
        let comma = if i + 1 == rows.len() { "" } else { "," };
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        println!("    {{\"name\": \"{name}\", \"wit\": \"{wit}\", \"hex\": \"{hex}\"}}{comma}");
    }
    println!("  ]");
    println!("}}");
    Ok(())
}
