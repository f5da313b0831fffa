"""`make up` returns only once the counter answers: `make up`'s own program (the root
__main__.py) on the real Pulumi CLI, on free ports. One request, sent the moment `up`
returns, with no retry and no wait for the listener, is answered, after a create and
after an update that moves the http-server's address. Before, `up` returned once the app
was deployed and its links stored, while the http-server opened its port when it took
the link, a moment later ("connection refused" in CI under load).

Without the wait in pulumi_wasmcloud/provider/http_listeners.py this test fails only when
the race is lost (a loaded machine); tests/unit/test_http_listeners.py is the one that
fails every time the pure part (which addresses, on which lattices) is broken.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import yaml

from tests.integration.test_local_security import COUNTER_WASM, LocalStack
from tests.lattice import free_port, http_get
from tests.pulumi_cli import e2e_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def once(url: str) -> tuple[int, bytes] | str:
    """One GET, as `curl` right after `make up`: its answer, or why there was none."""
    try:
        return http_get(url)
    except (urllib.error.URLError, OSError) as exc:
        return f"no answer from {url}: {exc}"


def move_address(stack: LocalStack, port: int) -> None:
    """The manifest's http-server link, listening on ``port`` instead (from a config of
    another name: the link itself changes, so the provider is handed it again)."""
    manifest = yaml.safe_load(stack.manifest.read_text())
    link = manifest["spec"]["components"][2]["traits"][0]["properties"]
    link["source_config"] = [{"name": "moved-http", "properties": {"address": f"127.0.0.1:{port}"}}]
    stack.manifest.write_text(yaml.safe_dump(manifest))


def test_one_request_right_after_up_is_answered(tmp_path: Path) -> None:
    if not COUNTER_WASM.exists():
        pytest.fail("the counter is not built: run scripts/bootstrap.sh")
    make = lambda: LocalStack(tmp_path, "at-once")  # noqa: E731
    with e2e_stack(tmp_path, "at-once", make) as stack:
        assert isinstance(stack, LocalStack)
        stack.up()
        url = f"http://127.0.0.1:{stack.ports['httpPort']}/at-once"
        assert once(url) == (200, b"at-once -> 1")

        # An update: the link's new address is listened on before `up` returns too.
        moved = free_port()
        move_address(stack, moved)
        stack.up()
        assert once(f"http://127.0.0.1:{moved}/at-once") == (200, b"at-once -> 2")
        assert isinstance(once(url), str)  # the old address is let go
