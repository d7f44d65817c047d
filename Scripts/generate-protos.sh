#!/usr/bin/env bash
# Regenerates Sources/MeshWire/Generated/*.pb.swift from Sources/MeshWire/Protos/*.proto.
# The generated Swift is committed, so a normal build never needs protoc or the plugin
# (building protoc-gen-swift takes minutes). Run this after editing a .proto file.
# Needs: apt-get install protobuf-compiler; the plugin is built once into .build-protoc/.
set -euo pipefail
cd "$(dirname "$0")/.."
plugin_dir=.build-protoc
plugin="$plugin_dir/sp/.build/release/protoc-gen-swift"
if [ ! -x "$plugin" ]; then
    mkdir -p "$plugin_dir"
    # swift-protobuf's plugin at the same version as the runtime in Package.swift.
    version=$(sed -n 's/.*swift-protobuf", from: "\([0-9.]*\)".*/\1/p' Package.swift)
    url=https://github.com/apple/swift-protobuf
    [ -d /opt/swift-packages/apple/swift-protobuf.git ] && url=/opt/swift-packages/apple/swift-protobuf.git
    rm -rf "$plugin_dir/sp"
    git clone -q --branch "$version" "$url" "$plugin_dir/sp"
    (cd "$plugin_dir/sp" && swift build -c release --product protoc-gen-swift)
fi
out=Sources/MeshWire/Generated
mkdir -p "$out"
rm -f "$out"/*.pb.swift
protoc --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true --swift_opt=FileNaming=DropPath \
    --swift_out="$out" -I Sources/MeshWire/Protos Sources/MeshWire/Protos/*.proto
echo "generated: $(ls "$out")"
