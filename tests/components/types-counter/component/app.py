"""Exports test:types/counter (refused by the host; see wit/world.wit). The resource's
class is in counter.py, where componentize-py looks for it."""
