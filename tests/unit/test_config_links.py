"""Which links a change to one named config can alter (the host delivers them again)."""

from __future__ import annotations

from host_agent.host.providers import links_naming_config
from host_agent.lattice.protocol import Link


def link(source: str, target: str, **configs: list[str]) -> Link:
    return Link.model_validate(
        {
            "source_id": source,
            "target": target,
            "wit_namespace": "wasi",
            "wit_package": "http",
            "interfaces": ["incoming-handler"],
            **configs,
        }
    )


def test_the_links_naming_a_config_on_either_side_are_affected() -> None:
    listen = link("httpserver", "hello", source_config=["listen", "limits"])
    target_side = link("hello", "kv", target_config=["limits"])
    other = link("httpserver", "other", source_config=["listen-other"])
    bare = link("hello", "blobs")
    links = [listen, target_side, other, bare]
    assert links_naming_config(links, "limits") == [listen, target_side]
    assert links_naming_config(links, "listen") == [listen]
    # Whole names only: a name that is a prefix of another's affects only its own links.
    assert links_naming_config(links, "listen-other") == [other]
    assert links_naming_config(links, "unrelated") == []


def test_a_secret_reference_is_named_like_a_config() -> None:
    sealed = link("httpserver", "hello", source_config=["SECRET_tls", "listen"])
    assert links_naming_config([sealed], "SECRET_tls") == [sealed]
