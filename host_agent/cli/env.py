"""Options read from the environment, shared by the host and controller commands.

Like every boundary here, a value that does not parse is refused with the variable's name
and what to write instead; it is never read as the default (``WASMCLOUD_CTL_TLS=ture``
must not quietly mean "no TLS").
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T", int, float)

# The spellings clap's boolish parser (the real host's) takes, and unset or empty as false.
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off", "n"})


def env_flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no switch: true, false (or 1/0, yes/no, on/off); unset or empty is false."""
    text = env.get(name, "")
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={text!r}: expected true or false (or 1/0, yes/no, on/off)")


def env_number(env: Mapping[str, str], name: str, default: str, kind: type[T]) -> T:
    """A number from the environment (``default`` when unset), refused by name when it is
    not one."""
    text = env.get(name, default)
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}={text!r}: expected {what}") from None
    if not math.isfinite(value):  # float() takes "inf" and "nan"; no setting means those
        raise ValueError(f"{name}={text!r}: expected a finite number")
    return value


def finite_float(text: str) -> float:
    """argparse type for seconds and sizes: a number, but not inf or nan (which float()
    takes and which would mean "never" or compare false everywhere)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def env_optional_number(env: Mapping[str, str], name: str, kind: type[T]) -> T | None:
    """Like ``env_number``, but unset or empty means "not given" (None)."""
    if not env.get(name, "").strip():
        return None
    return env_number(env, name, "", kind)
