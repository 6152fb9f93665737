#!/usr/bin/env bash
# Builds the sample guest programs for wasm32-wasip1 and copies them to modules/NAME.wasm,
# where tests and the node agent find them (an image `NAME` resolves to modules/NAME.wasm).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target=wasm32-wasip1

if ! rustup target list --installed | grep -qx "$target"; then
    echo "adding rust target $target…"
    rustup target add "$target"
fi

echo "building wasm samples ($target, release)…"
cd "$here"
cargo build --release --target "$target"

mkdir -p modules
count=0
for wasm in "target/$target/release/"*.wasm; do
    cp "$wasm" modules/
    count=$((count + 1))
done
echo "copied $count modules to $here/modules/:"
ls -l modules/
