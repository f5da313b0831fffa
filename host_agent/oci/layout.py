"""The artifact layout wasmCloud 1.4.2 uses for components (the values, not the code, are
learned from wasmCloud's core/oci.rs and wash-lib's registry.rs at v1.4.2, which use the
Bytecode Alliance oci-wasm 0.2 crate).

`wash push` writes an OCI image manifest whose config is a Wasm config
(`application/vnd.wasm.config.v0+json`) and whose single layer is the component
(`application/wasm`). The host accepts a component in a layer of any of
`COMPONENT_LAYER_TYPES` (older wasmCloud artifacts used the first two).
"""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
LEGACY_WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
OCI_TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
PROVIDER_ARCHIVE_LAYER = "application/vnd.wasmcloud.provider.archive.layer.v1+par"

COMPONENT_LAYER_TYPES = (WASM_LAYER, LEGACY_WASM_LAYER, OCI_TAR_LAYER)
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST))
# A manifest is a small JSON document; registries themselves cap them at 4 MiB.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
