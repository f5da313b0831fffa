"""logic, the core side of the edge + core example: example:logic/compute.

It computes a sum, product or maximum of s64 numbers and counts its computations in the
`default` bucket of whatever key-value provider it is linked to. Each instance picks a
random name the first time it runs and prints it once (the host logs guest stdout with
the component id), so a reply can be traced to the host that computed it.
"""

import os

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.compute import (
    Error_BadRequest,
    Error_Store,
    Operation,
    Reply,
    Request,
    Shape,
    Shape_Even,
    Shape_Odd,
    Shape_Overflow,
)
from wit_world.imports import atomics, store

BUCKET = "default"
COUNT_KEY = "logic-computations"
S64_MIN, S64_MAX = -(2**63), 2**63 - 1
MAX_NUMBERS = 1000  # a product of more is not a computation, it is a denial of service

# Chosen on the first call, not at import: componentize-py runs the module's top level at
# build time, so a name picked there would be the same in every instance.
_instance: str | None = None


def instance_name() -> str:
    global _instance
    if _instance is None:
        _instance = os.urandom(4).hex()
        print(f"logic instance {_instance} serving example:logic/compute")
    return _instance


def exact(operation: Operation, numbers: list[int]) -> int:
    if operation == Operation.SUM:
        return sum(numbers)
    if operation == Operation.PRODUCT:
        product = 1
        for number in numbers:
            product *= number
        return product
    if not numbers:
        raise Err(Error_BadRequest("the maximum of no numbers is undefined; give at least one"))
    return max(numbers)


def shape_of(value: int) -> tuple[int, Shape]:
    """The s64 the reply can carry, and what it means."""
    if value > S64_MAX:
        return S64_MAX, Shape_Overflow(f"exceeds the s64 maximum by {value - S64_MAX}")
    if value < S64_MIN:
        return S64_MIN, Shape_Overflow(f"is below the s64 minimum by {S64_MIN - value}")
    return value, Shape_Even() if value % 2 == 0 else Shape_Odd()


class Compute(exports.Compute):
    def compute(self, request: Request) -> Reply:
        name = instance_name()
        if len(request.numbers) > MAX_NUMBERS:
            raise Err(Error_BadRequest(f"{len(request.numbers)} numbers; at most {MAX_NUMBERS}"))
        value, shape = shape_of(exact(request.operation, request.numbers))
        try:
            with store.open(BUCKET) as bucket:
                count = atomics.increment(bucket, COUNT_KEY, 1)
        except Err as error:
            raise Err(Error_Store(f"counting in bucket {BUCKET!r}: {error.value}")) from None
        return Reply(value=value, shape=shape, count=count, instance=name, caller=request.caller)
