"""``pulumi-resource-wasmcloud``: the provider plugin process the Pulumi engine starts."""

from __future__ import annotations

import sys

from pulumi.provider.experimental.server import main as serve

from pulumi_wasmcloud import __version__
from pulumi_wasmcloud.provider.provider import WasmcloudProvider


def main() -> None:
    engine = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    serve(sys.argv[1:], __version__, WasmcloudProvider(engine))


if __name__ == "__main__":
    main()
