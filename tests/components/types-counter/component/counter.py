"""test:types/counter's resource: componentize-py looks up an exported resource's class
in the module named after its interface."""

from wit_world.exports import counter


class Counter(counter.Counter):
    def __init__(self, start: int) -> None:
        self.value = start

    def add(self, n: int) -> int:
        self.value += n
        return self.value
