// MeshWire: the protobuf schema of every message on the wire.
//
// Sources of truth are Protos/*.proto; Generated/*.pb.swift is produced from them by
// Scripts/generate-protos.sh and committed, so normal builds need neither protoc nor the plugin.
// Framing, encryption and ordering of these messages are defined in Protocol.md.
@_exported public import SwiftProtobuf
