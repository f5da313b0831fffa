"""Callee of the component-to-component tests: test:types/zoo, served over wRPC.

The echo functions hand back what they were given, so the caller can compare; describe
and divide do work only the callee can do; crash traps the callee on purpose.
"""

from componentize_py_types import Err, Ok, Result
from wit_world import exports
from wit_world.exports import zoo


class Zoo(exports.Zoo):
    def echo_point(self, p: zoo.Point) -> zoo.Point:
        return p

    def echo_shape(self, s: zoo.Shape) -> zoo.Shape:
        return s

    def echo_color(self, c: zoo.Color) -> zoo.Color:
        return c

    def echo_perms(self, p: zoo.Perms) -> zoo.Perms:
        return p

    def echo_option(self, v: str | None) -> str | None:
        return v

    def echo_result(self, v: Result[int, str]) -> int:
        if isinstance(v, Ok):
            return v.value
        raise v

    def echo_points(self, v: list[zoo.Point]) -> list[zoo.Point]:
        return v

    def echo_bytes(self, v: bytes) -> bytes:
        return v

    def echo_tuple(self, v: tuple[int, int, str]) -> tuple[int, int, str]:
        return v

    def echo_string(self, s: str) -> str:
        return s

    def echo_numbers(
        self, a: int, b: int, c: int, d: int, e: int, f: int, g: int, h: int
    ) -> tuple[int, int, int, int, int, int, int, int]:
        return (a, b, c, d, e, f, g, h)

    def echo_floats(self, a: float, b: float, c: str, d: bool) -> tuple[float, float, str, bool]:
        return (a, b, c, d)

    def describe(self, p: zoo.Point) -> str:
        return f"{p.label} at ({p.x}, {p.y})"

    def divide(self, a: int, b: int) -> int:
        if b == 0:
            raise Err(f"cannot divide {a} by zero")
        return a // b

    def note(self, text: str) -> None:
        print(f"note: {text}")

    def crash(self, message: str) -> str:
        raise RuntimeError(message)
