"""Generic wRPC values: encode and decode any component-model value from its WIT type.

The types come from the component itself (wasmtime's component type API, via `wit_type` and
`func_signature`), so a link between two components needs no code generated per interface.
Python values follow wasmtime-py's conventions exactly, so what a host function receives can
be encoded as is, and what is decoded can be passed to `Func.__call__`:

    bool -> bool, s8..u64 -> int, f32/f64 -> float, char -> str of length 1, string -> str,
    list<u8> -> bytes, list<T> -> list, record -> wasmtime.component.Record (attributes named
    as the fields), tuple -> tuple, enum -> str, flags -> set[str], own/borrow -> whatever the
    caller's HandleCodec gives; variant, option and result are "tagged"
    (wasmtime.component.Variant(tag, payload)) or "untagged" (the payload itself, None for a
    case without payload, e.g. option<T> is None | value) exactly when wasmtime-py tags them:
    when two cases' Python classes overlap (see `_python_classes`).

Bytes follow wrpc-runtime-wasmtime 0.24.1 / wrpc-transport 0.28.3 (the versions wasmCloud
1.4.2 locks): bool and u8/s8 one byte; u16..u64 unsigned and s16..s64 signed LEB128; f32/f64
little-endian; char its UTF-8 bytes; string and list a LEB128 u32 count then the items;
record and tuple their fields in order; variant and enum a LEB128 case index (then the
payload); option 0 | 1 value; result 0 ok | 1 err; flags little-endian bits in ceil(n/8)
bytes; resource handles an opaque byte vector. Parameters travel as one tuple of all
parameters, results as one tuple of all results. tests/unit/wrpc_vectors.json holds bytes
printed by the real crates.

It lives in the runtime, not in host_agent.wrpc, because its values are wasmtime-py's own
classes (Record, Variant, resource handles): provider processes speak wRPC without loading
wasmtime, so the wrpc package never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

from wasmtime import component as wc

from host_agent.runtime.resources import HostHandle
from host_agent.wrpc.codec import DecodeError, Reader, Writer

__all__ = [
    "DecodeError",
    "HandleCodec",
    "UnsupportedType",
    "WitEnum",
    "WitFlags",
    "WitHandle",
    "WitList",
    "WitOption",
    "WitPrimitive",
    "WitRecord",
    "WitResult",
    "WitTuple",
    "WitType",
    "WitVariant",
    "decode_values",
    "encode_values",
    "func_signature",
    "param_labels",
    "resource_names",
    "wit_type",
]

PrimitiveName = Literal[
    "bool", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "f32", "f64", "char", "string"
]
INTEGER_BITS: dict[str, tuple[int, bool]] = {
    "s8": (8, True),
    "s16": (16, True),
    "s32": (32, True),
    "s64": (64, True),
    "u8": (8, False),
    "u16": (16, False),
    "u32": (32, False),
    "u64": (64, False),
}


class UnsupportedType(ValueError):
    """A component type this codec cannot carry (stream, future, error-context)."""


@dataclass(frozen=True)
class WitPrimitive:
    name: PrimitiveName


@dataclass(frozen=True)
class WitList:
    element: WitType


@dataclass(frozen=True)
class WitRecord:
    fields: tuple[tuple[str, WitType], ...]


@dataclass(frozen=True)
class WitTuple:
    elements: tuple[WitType, ...]


@dataclass(frozen=True)
class WitEnum:
    names: tuple[str, ...]


@dataclass(frozen=True)
class WitFlags:
    names: tuple[str, ...]


@dataclass(frozen=True)
class WitHandle:
    """own<R> / borrow<R>. wasmtime-py's ResourceType has no name; `resource` is what the
    caller of `wit_type` named it (default "resource"), `wasm_type` the wasmtime object."""

    kind: Literal["own", "borrow"]
    resource: str = "resource"
    wasm_type: Any = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class WitVariant:
    cases: tuple[tuple[str, WitType | None], ...]
    tagged: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tagged", _tagged(self.cases))


@dataclass(frozen=True)
class WitOption:
    payload: WitType
    tagged: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tagged", _tagged(self.cases))

    @property
    def cases(self) -> tuple[tuple[str, WitType | None], ...]:
        return (("none", None), ("some", self.payload))


@dataclass(frozen=True)
class WitResult:
    ok: WitType | None
    err: WitType | None
    tagged: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tagged", _tagged(self.cases))

    @property
    def cases(self) -> tuple[tuple[str, WitType | None], ...]:
        return (("ok", self.ok), ("err", self.err))


WitType: TypeAlias = (
    WitPrimitive
    | WitList
    | WitRecord
    | WitTuple
    | WitVariant
    | WitEnum
    | WitOption
    | WitResult
    | WitFlags
    | WitHandle
)
VariantLike: TypeAlias = WitVariant | WitOption | WitResult


class HandleCodec(Protocol):
    """Turns resource values into the opaque bytes wRPC sends for a handle, and back."""

    def encode_handle(self, ty: WitHandle, value: Any) -> bytes: ...

    def decode_handle(self, ty: WitHandle, handle: bytes) -> Any: ...


# --- Python classes per type: wasmtime-py's add_classes, which decides tagging ----------


def _python_classes(ty: WitType | None) -> frozenset[type]:
    """The Python classes wasmtime-py lifts `ty` to (`object` for a case without payload)."""
    match ty:
        case None:
            return frozenset({object})
        case WitPrimitive(name="bool"):
            return frozenset({bool})
        case WitPrimitive(name="f32" | "f64"):
            return frozenset({float})
        case WitPrimitive(name="char" | "string"):
            return frozenset({str})
        case WitPrimitive():
            return frozenset({int})
        case WitList(element=WitPrimitive(name="u8")):
            return frozenset({bytes})
        case WitList():
            return frozenset({list})
        case WitRecord():
            return frozenset({wc.Record})
        case WitTuple():
            return frozenset({tuple})
        case WitEnum():
            return frozenset({str})
        case WitFlags():
            return frozenset({set})
        case WitHandle():
            return frozenset({wc.ResourceAny, wc.ResourceHost, HostHandle})
        case WitVariant() | WitOption() | WitResult():
            if ty.tagged:
                return frozenset({wc.Variant})
            return frozenset().union(*(_python_classes(case) for _, case in ty.cases))


def _tagged(cases: Sequence[tuple[str, WitType | None]]) -> bool:
    """wasmtime-py's VariantLikeType._tagged: tagged when two cases' classes overlap."""
    seen: set[type] = set()
    for _, ty in cases:
        classes = _python_classes(ty)
        if classes & seen:
            return True
        seen |= classes
    return False


# --- From wasmtime-py types -----------------------------------------------------------

PRIMITIVES: dict[type, PrimitiveName] = {
    wc.Bool: "bool",
    wc.S8: "s8",
    wc.S16: "s16",
    wc.S32: "s32",
    wc.S64: "s64",
    wc.U8: "u8",
    wc.U16: "u16",
    wc.U32: "u32",
    wc.U64: "u64",
    wc.F32: "f32",
    wc.F64: "f64",
    wc.Char: "char",
    wc.String: "string",
}

ResourceNamer = Callable[[Any], str]


def wit_type(valtype: wc.ValType, resource_name: ResourceNamer | None = None) -> WitType:
    """The WitType of a wasmtime-py ValType. `resource_name` names a wasmtime ResourceType
    (e.g. by looking it up among an instance's exports); without it handles are "resource"."""
    primitive = PRIMITIVES.get(type(valtype))
    if primitive is not None:
        return WitPrimitive(primitive)

    def convert(inner: wc.ValType) -> WitType:
        return wit_type(inner, resource_name)

    match valtype:
        case wc.ListType():
            return WitList(convert(valtype.element))
        case wc.RecordType():
            return WitRecord(tuple((name, convert(ty)) for name, ty in valtype.fields))
        case wc.TupleType():
            return WitTuple(tuple(convert(ty) for ty in valtype.elements))
        case wc.VariantType():
            return WitVariant(
                tuple((name, None if ty is None else convert(ty)) for name, ty in valtype.cases)
            )
        case wc.EnumType():
            return WitEnum(tuple(valtype.names))
        case wc.OptionType():
            return WitOption(convert(valtype.payload))
        case wc.ResultType():
            ok, err = valtype.ok, valtype.err
            return WitResult(
                None if ok is None else convert(ok), None if err is None else convert(err)
            )
        case wc.FlagsType():
            return WitFlags(tuple(valtype.names))
        case wc.OwnType() | wc.BorrowType():
            kind: Literal["own", "borrow"] = "own" if isinstance(valtype, wc.OwnType) else "borrow"
            name = resource_name(valtype.ty) if resource_name else "resource"
            return WitHandle(kind, name, valtype.ty)
    kind_name = type(valtype).__name__.removesuffix("Type").lower()
    raise UnsupportedType(
        f"component values of type {kind_name} cannot cross wRPC links yet; "
        "use records, variants, lists or resources instead"
    )


def func_signature(
    func_type: wc.FuncType, resource_name: ResourceNamer | None = None
) -> tuple[list[tuple[str, WitType]], WitType | None]:
    """(named parameter types, result type or None) of a wasmtime component FuncType."""
    params = [(name, wit_type(ty, resource_name)) for name, ty in func_type.params]
    result = func_type.result
    return params, None if result is None else wit_type(result, resource_name)


def resource_names(exports: Mapping[str, Any]) -> ResourceNamer:
    """A ResourceNamer for the resources an interface exports (its `exports(engine)`):
    ResourceType has equality but no name or hash, so this compares against each."""
    known = [(name, extern.ty) for name, extern in exports.items()]
    resources = [(name, ty) for name, ty in known if isinstance(ty, wc.ResourceType)]

    def name_of(ty: Any) -> str:
        return next((name for name, resource in resources if resource == ty), "resource")

    return name_of


def param_labels(names: Sequence[str]) -> list[str]:
    """Labels for error paths: ["param 'req'", ...]."""
    return [f"param '{name}'" for name in names]


# --- Encoding ---------------------------------------------------------------------------


def _where(path: tuple[str, ...]) -> str:
    return ": ".join(path)


def _describe(value: Any) -> str:
    return type(value).__name__


def encode_values(
    types: Sequence[WitType],
    values: Sequence[Any],
    *,
    handles: HandleCodec | None = None,
    labels: Sequence[str] | None = None,
) -> bytes:
    """Encode `values` (one per type) as the wRPC tuple of them. A value of the wrong shape
    raises ValueError naming its path (`labels` name the top-level positions)."""
    if len(values) != len(types):
        raise ValueError(f"expected {len(types)} values, got {len(values)}")
    names = _labels(types, labels)
    writer = Writer()
    for ty, value, label in zip(types, values, names, strict=True):
        _encode(ty, value, writer, (label,), handles)
    return writer.finish()


def _labels(types: Sequence[WitType], labels: Sequence[str] | None) -> list[str]:
    if labels is None:
        return ["value"] if len(types) == 1 else [f"value {i}" for i in range(len(types))]
    if len(labels) != len(types):
        raise ValueError(f"expected {len(types)} labels, got {len(labels)}")
    return list(labels)


def _encode(
    ty: WitType, value: Any, writer: Writer, path: tuple[str, ...], handles: HandleCodec | None
) -> None:
    def fail(expected: str) -> ValueError:
        return ValueError(f"{_where(path)}: expected {expected}, got {_describe(value)}")

    match ty:
        case WitPrimitive(name="bool"):
            if not isinstance(value, bool):
                raise fail("a bool")
            writer.boolean(value)
        case WitPrimitive(name="f32" | "f64"):
            if not isinstance(value, float):
                raise fail("a float")
            try:
                writer.f32(value) if ty.name == "f32" else writer.f64(value)
            except OverflowError:
                raise ValueError(f"{_where(path)}: {value} does not fit in f32") from None
        case WitPrimitive(name="char"):
            if not isinstance(value, str) or len(value) != 1:
                raise fail("a one-character str")
            if 0xD800 <= ord(value) <= 0xDFFF:
                raise ValueError(f"{_where(path)}: a surrogate is not a Unicode scalar value")
            writer.char(value)
        case WitPrimitive(name="string"):
            if not isinstance(value, str):
                raise fail("a str")
            try:
                writer.list_u8(value.encode())
            except UnicodeEncodeError:
                raise ValueError(f"{_where(path)}: string contains a lone surrogate") from None
        case WitPrimitive(name=int_name):
            bits, signed = INTEGER_BITS[int_name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise fail("an int")
            low = -(1 << (bits - 1)) if signed else 0
            high = (1 << (bits - 1 if signed else bits)) - 1
            if not low <= value <= high:
                raise ValueError(f"{_where(path)}: {value} is out of range for {int_name}")
            if bits == 8:
                writer.u8(value)  # s8 and u8 are one byte, two's complement for s8
            elif signed:
                writer.s(value)
            else:
                writer.u(value)
        case WitList(element=WitPrimitive(name="u8")):
            if not isinstance(value, bytes):
                raise fail("bytes")
            writer.list_u8(value)
        case WitList(element=element):
            if not isinstance(value, list):
                raise fail("a list")
            writer.u(len(value))
            for index, item in enumerate(value):
                _encode(element, item, writer, (*path, f"item {index}"), handles)
        case WitRecord(fields=fields):
            for name, field_type in fields:
                if not hasattr(value, name):
                    raise ValueError(f"{_where(path)}: record has no field '{name}'")
                field_path = (*path, f"field '{name}'")
                _encode(field_type, getattr(value, name), writer, field_path, handles)
        case WitTuple(elements=elements):
            if not isinstance(value, tuple) or len(value) != len(elements):
                raise fail(f"a tuple of {len(elements)}")
            for index, (element, item) in enumerate(zip(elements, value, strict=True)):
                _encode(element, item, writer, (*path, f"element {index}"), handles)
        case WitEnum(names=names):
            if not isinstance(value, str):
                raise fail("a str")
            if value not in names:
                raise ValueError(f"{_where(path)}: '{value}' is not one of {', '.join(names)}")
            writer.u(names.index(value))
        case WitFlags(names=names):
            if not isinstance(value, set | frozenset):
                raise fail("a set of str")
            unknown = sorted(str(flag) for flag in value if flag not in names)
            if unknown:
                raise ValueError(f"{_where(path)}: unknown flags {', '.join(unknown)}")
            bits = sum(1 << index for index, name in enumerate(names) if name in value)
            writer.raw(bits.to_bytes(_flag_bytes(len(names)), "little"))
        case WitHandle():
            if handles is None:
                raise ValueError(
                    f"{_where(path)}: a resource handle needs a HandleCodec to cross wRPC"
                )
            try:
                handle = handles.encode_handle(ty, value)
            except ValueError as error:
                raise ValueError(f"{_where(path)}: {error}") from None
            writer.list_u8(handle)
        case WitVariant() | WitOption() | WitResult():
            index, payload_type, payload = _choose_case(ty, value, path)
            if isinstance(ty, WitVariant):
                writer.u(index)
            else:
                writer.u8(index)  # option: 0 none, 1 some; result: 0 ok, 1 err
            if payload_type is not None:
                case_name = ty.cases[index][0]
                _encode(payload_type, payload, writer, (*path, f"case '{case_name}'"), handles)


def _flag_bytes(count: int) -> int:
    # wrpc-runtime-wasmtime writes ceil(n/8) bytes (one byte for up to 8 flags).
    return max(1, -(-count // 8))


def _choose_case(
    ty: VariantLike, value: Any, path: tuple[str, ...]
) -> tuple[int, WitType | None, Any]:
    """(case index, payload type, payload) for a Python value, as wasmtime-py lowers it."""
    cases = ty.cases
    if ty.tagged:
        if not isinstance(value, wc.Variant):
            raise ValueError(
                f"{_where(path)}: expected wasmtime.component.Variant, got {_describe(value)}"
            )
        for index, (name, payload_type) in enumerate(cases):
            if name == value.tag:
                if payload_type is None and value.payload is not None:
                    raise ValueError(f"{_where(path)}: case '{name}' has no payload")
                return index, payload_type, value.payload
        names = ", ".join(name for name, _ in cases)
        raise ValueError(f"{_where(path)}: unknown case '{value.tag}' (cases: {names})")
    # Untagged: the case whose classes hold the value. Exact classes first, so True picks a
    # bool case over an int one; then subclasses, as wasmtime-py's isinstance test does.
    for exact in (True, False):
        for index, (_, payload_type) in enumerate(cases):
            if payload_type is None:
                if value is None:
                    return index, None, None
                continue
            classes = _python_classes(payload_type)
            if exact:
                matches = type(value) in classes or (value is None and object in classes)
            else:
                matches = isinstance(value, tuple(classes - {object}))
            if matches:
                return index, payload_type, value
    names = ", ".join(name for name, _ in cases)
    raise ValueError(f"{_where(path)}: {_describe(value)} fits none of the cases {names}")


# --- Decoding ---------------------------------------------------------------------------


def decode_values(
    types: Sequence[WitType],
    data: bytes,
    *,
    handles: HandleCodec | None = None,
    labels: Sequence[str] | None = None,
) -> list[Any]:
    """Decode the wRPC tuple of `types` from `data`. Malformed bytes (and trailing bytes)
    raise DecodeError naming the path, e.g. "param 'req': field 'name': string is not UTF-8"."""
    names = _labels(types, labels)
    reader = Reader(data)
    values = [
        _decode(ty, reader, (label,), handles) for ty, label in zip(types, names, strict=True)
    ]
    if not reader.at_end():
        raise DecodeError(f"{reader.remaining()} trailing bytes after the last value")
    return values


def _decode(ty: WitType, reader: Reader, path: tuple[str, ...], handles: HandleCodec | None) -> Any:
    try:
        return _decode_inner(ty, reader, path, handles)
    except _PathedDecodeError:
        raise
    except DecodeError as error:
        raise _PathedDecodeError(f"{_where(path)}: {error}") from None


class _PathedDecodeError(DecodeError):
    """A DecodeError whose message already names its path."""


def _decode_inner(
    ty: WitType, reader: Reader, path: tuple[str, ...], handles: HandleCodec | None
) -> Any:
    match ty:
        case WitPrimitive(name="bool"):
            return reader.boolean()
        case WitPrimitive(name="u8"):
            return reader.u8()
        case WitPrimitive(name="s8"):
            return reader.s8()
        case WitPrimitive(name="f32"):
            return reader.f32()
        case WitPrimitive(name="f64"):
            return reader.f64()
        case WitPrimitive(name="char"):
            return reader.char()
        case WitPrimitive(name="string"):
            return reader.string()
        case WitPrimitive(name=int_name):
            bits, signed = INTEGER_BITS[int_name]
            return reader.s(bits) if signed else reader.u(bits)
        case WitList(element=WitPrimitive(name="u8")):
            return reader.list_u8()
        case WitList(element=element):
            count = reader.u(32)
            # Every WIT value takes at least one byte, so a count beyond the bytes left is a lie.
            if count > reader.remaining():
                raise DecodeError(f"list of {count} items is longer than the message")
            return [
                _decode(element, reader, (*path, f"item {index}"), handles)
                for index in range(count)
            ]
        case WitRecord(fields=fields):
            record = wc.Record()
            for name, field_type in fields:
                field_path = (*path, f"field '{name}'")
                setattr(record, name, _decode(field_type, reader, field_path, handles))
            return record
        case WitTuple(elements=elements):
            return tuple(
                _decode(element, reader, (*path, f"element {index}"), handles)
                for index, element in enumerate(elements)
            )
        case WitEnum(names=names):
            index = reader.u(32)
            if index >= len(names):
                raise DecodeError(f"enum discriminant {index} is not below its {len(names)} cases")
            return names[index]
        case WitFlags(names=names):
            size = _flag_bytes(len(names))
            bits = int.from_bytes(reader.fixed(size), "little")
            if bits >> len(names):
                raise DecodeError(f"flag bits 0x{bits:x} set beyond the {len(names)} flags")
            return {name for index, name in enumerate(names) if bits >> index & 1}
        case WitHandle():
            if handles is None:
                raise DecodeError("a resource handle needs a HandleCodec to cross wRPC")
            return handles.decode_handle(ty, reader.list_u8())
        case WitVariant() | WitOption() | WitResult():
            if isinstance(ty, WitVariant):
                index = reader.u(32)
                what = "variant"
            else:
                index = reader.u8()
                what = "option" if isinstance(ty, WitOption) else "result"
            if index >= len(ty.cases):
                raise DecodeError(
                    f"{what} discriminant {index} is not below its {len(ty.cases)} cases"
                )
            name, payload_type = ty.cases[index]
            payload = (
                None
                if payload_type is None
                else _decode(payload_type, reader, (*path, f"case '{name}'"), handles)
            )
            return wc.Variant(name, payload) if ty.tagged else payload
