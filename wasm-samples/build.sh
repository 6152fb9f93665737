#!/usr/bin/env bash
# Builds the sample guest programs and copies them to modules/NAME.wasm, where tests and the
# node agent find them (an image `NAME` resolves to modules/NAME.wasm): this crate for
# wasm32-wasip1 (core modules), then p2/ for wasm32-wasip2 (WASI 0.2 components), then http/
# (HTTP components, cdylibs whose underscores become dashes: hello_http → hello-http.wasm).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
mkdir -p modules
count=0

# build DIR TARGET: builds the crate in DIR for TARGET and copies its binaries to modules/.
build() {
    local dir="$1" target="$2"
    if ! rustup target list --installed | grep -qx "$target"; then
        echo "adding rust target $target…"
        rustup target add "$target"
    fi
    echo "building wasm samples in $dir ($target, release)…"
    (cd "$dir" && cargo build --release --target "$target")
    for wasm in "$dir/target/$target/release/"*.wasm; do
        name="$(basename "$wasm")"
        cp "$wasm" "modules/${name//_/-}"
        count=$((count + 1))
    done
}

build . wasm32-wasip1
build p2 wasm32-wasip2
build http wasm32-wasip2
echo "copied $count modules to $here/modules/:"
ls -l modules/
