"""Machines as Pulumi inputs: what a program writes (SshMachine, LeafNode) becomes a wire
map with its private key secret; the provider parses that map strictly (every wrong type
named by its path, unknown keys refused, values not known in preview tolerated) and
reaches the machine by the host-key rule (a given key verified, else the recorded one,
else the first key seen recorded; an explicit opt-out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pulumi.provider.experimental.property_value import PropertyValue

from pulumi_wasmcloud.machines import LeafNode, SshMachine
from pulumi_wasmcloud.provider.host_resource import known_host
from pulumi_wasmcloud.provider.machine_inputs import (
    MachineSpec,
    parse_machine,
    secret_private_keys,
    target_for,
)
from pulumi_wasmcloud.provider.provider import user_message
from pulumi_wasmcloud.provider.values import UNKNOWN, to_props
from pulumi_wasmcloud.provision.connector import CommandFailed, CommandResult, Unreachable
from tests.lattice import run_async
from tests.machines import KeyPair

CLIENT = KeyPair.generate()
HOST = KeyPair.generate("host@edge-1")
OTHER = KeyPair.generate()


def wire(**fields: Any) -> dict[str, Any]:
    """A machine map as the engine delivers it (secrets already unwrapped)."""
    return {
        "name": "edge-1",
        "host": "198.18.0.5",
        "port": 22,
        "user": "root",
        "privateKey": CLIENT.private_openssh,
        "hostKey": None,
        "verifyHostKey": True,
        "bastion": None,
        "sudo": None,
        **fields,
    }


def reasons(parsed: MachineSpec | list[Any]) -> list[str]:
    assert isinstance(parsed, list), parsed
    return [str(failure) for failure in parsed]


@run_async
async def test_a_program_s_machine_becomes_a_wire_map_with_its_keys_secret() -> None:
    bastion = SshMachine("jump", host="198.18.0.9", private_key=OTHER.private_openssh)
    machine = SshMachine(
        "edge-1",
        host="198.18.0.5",
        private_key=CLIENT.private_openssh,
        user="deploy",
        port=2222,
        host_key=HOST.public_line,
        bastion=bastion,
    )
    leaf = LeafNode("edge", machine).to_input()
    assert leaf["region"] == "edge"
    sent = leaf["machine"]
    assert set(sent) == {
        "name", "host", "port", "user", "privateKey", "hostKey", "verifyHostKey", "bastion",
        "sudo",
    }  # fmt: skip
    assert (sent["name"], sent["host"], sent["port"], sent["user"]) == (
        "edge-1", "198.18.0.5", 2222, "deploy"
    )  # fmt: skip
    assert sent["hostKey"] == HOST.public_line and sent["verifyHostKey"] is True
    for private_key, expected in (
        (sent["privateKey"], CLIENT.private_openssh),
        (sent["bastion"]["privateKey"], OTHER.private_openssh),
    ):
        assert await private_key.is_secret()
        assert await private_key.future() == expected
    assert CLIENT.private_openssh not in repr(machine)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        SshMachine("", host="h", private_key="k")


def test_a_whole_machine_map_parses_with_defaults_for_what_is_left_out() -> None:
    parsed = parse_machine(
        {"name": "edge-1", "host": "198.18.0.5", "privateKey": CLIENT.private_openssh},
        "machine",
    )
    assert parsed == MachineSpec("edge-1", "198.18.0.5", CLIENT.private_openssh)
    assert isinstance(parsed, MachineSpec)
    assert (parsed.user, parsed.port, parsed.verify_host_key, parsed.sudo) == (
        "root", 22, True, None
    )  # fmt: skip
    assert CLIENT.private_openssh not in repr(parsed)
    nested = parse_machine(wire(bastion=wire(name="jump", host="198.18.0.9")), "cluster[1]")
    assert isinstance(nested, MachineSpec) and nested.bastion is not None
    assert nested.names == ["jump", "edge-1"]


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"port": "22"}, 'cluster[1].port: expected a whole number, got a string ("22")'),
        ({"port": 22.5}, "cluster[1].port: expected a whole number, got a number (22.5)"),
        ({"port": True}, "cluster[1].port: expected a whole number, got true"),
        ({"port": 70000}, "cluster[1].port: 70000 is not a TCP port (1 to 65535)"),
        ({"name": ""}, 'cluster[1].name: expected a non-empty string, got a string ("")'),
        ({"name": None}, "cluster[1].name: required: a non-empty string"),
        ({"host": 5}, "cluster[1].host: expected a non-empty string, got a number (5)"),
        ({"user": ["root"]}, "cluster[1].user: expected a non-empty string, got a list"),
        (
            {"verifyHostKey": "false"},
            'cluster[1].verifyHostKey: expected true or false, got a string ("false")',
        ),
        ({"sudo": 1}, "cluster[1].sudo: expected true or false, got a number (1)"),
        ({"privateKey": "not a key"}, "cluster[1].privateKey: not an unencrypted"),
        ({"privateKey": None}, "cluster[1].privateKey: required: a non-empty string"),
        ({"hostKey": "AAAAC3NzaC1lZDI1NTE5"}, "cluster[1].hostKey: expected an OpenSSH public"),
        ({"hostKey": "ssh-ed25519 !!"}, "cluster[1].hostKey: not a valid ssh-ed25519 public key"),
        ({"privatekey": "x"}, "cluster[1].privatekey: unknown field; a machine has name, host"),
        (
            {"bastion": wire(port="2")},
            'cluster[1].bastion.port: expected a whole number, got a string ("2")',
        ),
        (
            {"bastion": "jump"},
            "cluster[1].bastion: expected a machine (an SshMachine: a map with name, host and "
            'privateKey), got a string ("jump")',
        ),
    ],
)
def test_each_wrong_field_is_refused_by_its_path_never_read_as_a_default(
    fields: dict[str, Any], said: str
) -> None:
    [refusal] = reasons(parse_machine(wire(**fields), "cluster[1]"))
    assert refusal.startswith(said), refusal


def test_every_failure_is_reported_at_once_and_a_non_map_is_refused() -> None:
    said = reasons(parse_machine(wire(port="22", sudo="yes", name=3), "machine"))
    assert [s.split(":")[0] for s in said] == ["machine.name", "machine.port", "machine.sudo"]
    assert reasons(parse_machine("edge-1", "machine")) == [
        "machine: expected a machine (an SshMachine: a map with name, host and privateKey), "
        'got a string ("edge-1")'
    ]


def test_values_not_known_in_preview_are_not_refused_but_known_wrong_ones_are() -> None:
    assert parse_machine(UNKNOWN, "machine") == []
    assert parse_machine(wire(host=UNKNOWN), "machine") == []
    assert parse_machine(wire(bastion=wire(privateKey=UNKNOWN)), "machine") == []
    assert reasons(parse_machine(wire(host=UNKNOWN, port="22"), "machine")) == [
        'machine.port: expected a whole number, got a string ("22")'
    ]


def test_private_keys_go_back_to_the_engine_as_secrets_at_any_depth() -> None:
    state = {"machine": wire(bastion=wire(name="jump")), "hostId": "N..."}
    props = to_props(secret_private_keys(state))
    machine = props["machine"].value
    assert isinstance(machine, Mapping)
    assert machine["privateKey"] == PropertyValue(CLIENT.private_openssh, is_secret=True)
    bastion = machine["bastion"].value
    assert isinstance(bastion, Mapping) and bastion["privateKey"].is_secret
    assert not machine["host"].is_secret and not props["hostId"].is_secret


def spec(**fields: Any) -> MachineSpec:
    parsed = parse_machine(wire(**fields), "machine")
    assert isinstance(parsed, MachineSpec), parsed
    return parsed


def test_the_host_key_rule() -> None:
    # A key given in the program is what is verified, whatever the state recorded.
    given = target_for(spec(hostKey=HOST.public_line), OTHER.public_line)
    assert (given.known_host_key, given.verify_host_key, given.record_host_key) == (
        HOST.public_line, True, False
    )  # fmt: skip
    # None given: the recorded key is verified.
    recorded = target_for(spec(), HOST.public_line)
    assert (recorded.known_host_key, recorded.record_host_key) == (HOST.public_line, False)
    # Nothing given or recorded: the first connection records what the machine shows.
    first = target_for(spec(), None)
    assert (first.known_host_key, first.verify_host_key, first.record_host_key) == (
        None, True, True
    )  # fmt: skip
    # The explicit opt-out: any key, nothing recorded.
    opted_out = target_for(spec(verifyHostKey=False), HOST.public_line)
    assert (opted_out.known_host_key, opted_out.verify_host_key) == (None, False)
    assert not opted_out.record_host_key
    # A bastion's key comes from the recorded keys by its name.
    behind = target_for(
        spec(bastion=wire(name="jump")), None, {"jump": OTHER.public_line, "edge-1": "x"}
    )
    assert behind.bastion is not None and behind.bastion.known_host_key == OTHER.public_line
    assert behind.record_host_key


def test_a_failure_on_a_machine_reaches_the_cli_as_its_sentence() -> None:
    failed = CommandFailed("edge-1", "python3 -m venv /x", CommandResult(1, "", "no ensurepip\n"))
    assert user_message(failed) == (
        "`python3 -m venv /x` failed on edge-1 with exit code 1: no ensurepip"
    )
    assert user_message(Unreachable("cannot reach edge-1 at 198.18.0.5:22: no route")) == (
        "cannot reach edge-1 at 198.18.0.5:22: no route"
    )


def test_a_host_on_a_machine_is_remembered_for_the_applications_of_its_lattice() -> None:
    """Applications wait for the hosts the state holds to rejoin: a host on a machine is
    one of them (by the lattice's URL), running as its last read or apply saw it."""
    state = {
        "hostId": "NHOST",
        "name": "edge",
        "natsUrl": "nats://198.18.0.2:4222",
        "hostNatsUrl": "nats://198.18.0.5:4222",
        "lattice": "default",
        "machine": wire(),
        "running": True,
    }
    host = known_host(state)
    assert host is not None and (host.id, host.name, host.running()) == ("NHOST", "edge", True)
    stopped = known_host({**state, "running": False})
    assert stopped is not None and not stopped.running()
    assert known_host({**state, "hostId": UNKNOWN}) is None  # preview of a new host
