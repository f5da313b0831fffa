"""Machines as the provider receives them (``SshMachine``'s wire map), parsed strictly,
and how to reach them with the host-key rule.

``parse_machine`` refuses every field of the wrong type by its path
(``cluster[1].port: expected a whole number, got a string ("22")``) and every key it does
not know; it never reads a wrong value as the default. While a preview has values that
are not known yet, it checks the known ones and returns only their failures (an empty
list when there are none): a ``MachineSpec`` exists only when everything is known.

Host keys: a ``hostKey`` given is verified; without one, the first connection records the
key the machine shows (``hostKeys`` in the resource's state: machine name -> key line)
and every later connection verifies against it; ``verifyHostKey: false`` accepts any key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pulumi.provider.experimental.property_value import PropertyValue

from pulumi_wasmcloud.provider.handlers import InputError
from pulumi_wasmcloud.provider.values import UNKNOWN
from pulumi_wasmcloud.provision.connector import (
    HostKeyRefused,
    SshConnection,
    SshTarget,
    parse_private_key,
    parse_public_key,
)

V = TypeVar("V")

# The wire map's keys (SshMachine.to_input).
MACHINE_KEYS = (
    "name",
    "host",
    "port",
    "user",
    "privateKey",
    "hostKey",
    "verifyHostKey",
    "bastion",
    "sudo",
)


@dataclass(frozen=True)
class MachineSpec:
    """One machine as the program describes it, every value known and valid."""

    name: str
    host: str
    private_key: str = field(repr=False)
    user: str = "root"
    port: int = 22
    host_key: str | None = None
    verify_host_key: bool = True
    bastion: MachineSpec | None = None
    sudo: bool | None = None

    @property
    def names(self) -> list[str]:
        """This machine's name and its bastions' (whose keys ``hostKeys`` records too)."""
        return [*(self.bastion.names if self.bastion else []), self.name]


def describe(value: Any) -> str:
    """What a value is, as a refusal says it: ``a string ("22")``, ``a number (1.5)``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"a number ({value:g})" if isinstance(value, float) else f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'a string ("{shown}")'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def parse_machine(value: Any, field: str) -> MachineSpec | list[InputError]:
    """The machine ``value`` describes, or why not (each failure named ``field.key``).
    A value not known yet (preview) gives the failures of its known parts, maybe none."""
    if value is UNKNOWN:
        return []
    if not isinstance(value, dict):
        return [
            InputError(
                field,
                "expected a machine (an SshMachine: a map with name, host and privateKey), "
                f"got {describe(value)}",
            )
        ]
    failures: list[InputError] = []
    pending = False
    for key in sorted(set(value) - set(MACHINE_KEYS)):
        failures.append(
            InputError(f"{field}.{key}", f"unknown field; a machine has {', '.join(MACHINE_KEYS)}")
        )

    def known(key: str) -> Any:
        nonlocal pending
        if value.get(key) is UNKNOWN:
            pending = True
            return None
        return value.get(key)

    def text(key: str, required: bool, default: str | None = None) -> str | None:
        given = known(key)
        if given is None:
            if required and value.get(key) is not UNKNOWN:
                failures.append(InputError(f"{field}.{key}", "required: a non-empty string"))
            return default
        if not isinstance(given, str) or not given.strip():
            failures.append(
                InputError(f"{field}.{key}", f"expected a non-empty string, got {describe(given)}")
            )
            return default
        return given

    def flag(key: str) -> bool | None:
        given = known(key)
        if given is not None and not isinstance(given, bool):
            failures.append(
                InputError(f"{field}.{key}", f"expected true or false, got {describe(given)}")
            )
            return None
        return given

    name = text("name", required=True)
    host = text("host", required=True)
    user = text("user", required=False, default="root")
    private_key = text("privateKey", required=True)
    if private_key is not None:
        try:
            parse_private_key(private_key, f"{field}.privateKey")
        except ValueError as exc:
            reason = str(exc).removeprefix(f"{field}.privateKey: ")
            failures.append(InputError(f"{field}.privateKey", reason))
    host_key = text("hostKey", required=False)
    if host_key is not None:
        try:
            parse_public_key(host_key, f"{field}.hostKey")
        except ValueError as exc:
            reason = str(exc).removeprefix(f"{field}.hostKey: ")
            failures.append(
                InputError(
                    f"{field}.hostKey",
                    f"{reason}; give the line `ssh-keyscan -t ed25519 <host>` prints, "
                    "without the address",
                )
            )
    port = known("port")
    if port is None:
        port = 22
    elif not isinstance(port, int) or isinstance(port, bool):
        failures.append(
            InputError(f"{field}.port", f"expected a whole number, got {describe(port)}")
        )
    elif not 0 < port < 65536:
        failures.append(InputError(f"{field}.port", f"{port} is not a TCP port (1 to 65535)"))
    verify = flag("verifyHostKey")
    sudo = flag("sudo")
    bastion: MachineSpec | None = None
    given_bastion = value.get("bastion")
    if given_bastion is not None:
        parsed = parse_machine(given_bastion, f"{field}.bastion")
        if isinstance(parsed, list):
            failures += parsed
            pending = pending or not parsed
        else:
            bastion = parsed
    if failures or pending:
        return failures
    assert name is not None and host is not None and private_key is not None
    assert user is not None and isinstance(port, int)
    return MachineSpec(
        name=name,
        host=host,
        private_key=private_key,
        user=user,
        port=port,
        host_key=host_key,
        verify_host_key=True if verify is None else verify,
        bastion=bastion,
        sudo=sudo,
    )


def secret_private_keys(value: V) -> V:
    """``value`` (a machine map, or anything holding some) with every ``privateKey`` marked
    secret, so the engine keeps it encrypted in state and out of every display. Nested
    secrets are lost by the plain-dict conversion; a handler puts them back with this."""
    marked: Any = value
    if isinstance(value, dict):
        marked = {
            key: (
                PropertyValue(item, is_secret=True)
                if key == "privateKey" and isinstance(item, str)
                else secret_private_keys(item)
            )
            for key, item in value.items()
        }
    elif isinstance(value, list):
        marked = [secret_private_keys(item) for item in value]
    return cast(V, marked)


def target_for(
    spec: MachineSpec,
    recorded_host_key: str | None,
    recorded: Mapping[str, str] | None = None,
) -> SshTarget:
    """How to reach ``spec``: its given key verified, else the key recorded in state,
    else (first connection) the key it shows accepted and reported for recording
    (``SshConnection.host_keys_seen``); ``verify_host_key`` false accepts any key.
    ``recorded`` holds the keys recorded for its bastions, by machine name."""
    known = spec.host_key or recorded_host_key
    bastion = None
    if spec.bastion is not None:
        keys = recorded or {}
        bastion = target_for(spec.bastion, keys.get(spec.bastion.name), keys)
    return SshTarget(
        name=spec.name,
        host=spec.host,
        private_key=spec.private_key,
        user=spec.user,
        port=spec.port,
        known_host_key=known if spec.verify_host_key else None,
        verify_host_key=spec.verify_host_key,
        bastion=bastion,
        sudo=spec.sudo,
        record_host_key=spec.verify_host_key and known is None,
    )


def connect(spec: MachineSpec, host_keys: Mapping[str, str]) -> SshConnection:
    """Connect to ``spec`` by the host-key rule (``host_keys``: what the state recorded).
    A changed key is refused naming the machine and what to give in the program."""
    try:
        return SshConnection.connect(target_for(spec, host_keys.get(spec.name), host_keys))
    except HostKeyRefused as refused:
        raise HostKeyRefused(
            str(refused)
            .replace(
                "give it as known_host_key",
                "give it as host_key of that SshMachine in the program (it then replaces "
                "the key recorded in the stack's state)",
            )
            .replace(
                "give its new key as known_host_key",
                "give its new key as host_key of that SshMachine in the program",
            )
        ) from None


def recorded_keys(
    spec: MachineSpec, connection: SshConnection, before: Mapping[str, str]
) -> dict[str, str]:
    """The ``hostKeys`` to keep after connecting: the keys recorded before plus what each
    machine on the way showed, for machines whose key is checked (a machine that opted out
    has nothing to verify against later)."""
    checked: set[str] = set()
    machine: MachineSpec | None = spec
    while machine is not None:
        if machine.verify_host_key:
            checked.add(machine.name)
        machine = machine.bastion
    seen = connection.host_keys_seen()
    return {**before, **{name: key for name, key in seen.items() if name in checked}}


def parse_host_keys(value: Any, field: str = "hostKeys") -> dict[str, str] | list[InputError]:
    """The ``hostKeys`` a state holds (machine name -> key line); absent is none yet."""
    if value is None or value is UNKNOWN:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [
            InputError(field, f"expected a map of machine name to key line, got {describe(value)}")
        ]
    return dict(value)
