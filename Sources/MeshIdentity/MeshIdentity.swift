// MeshIdentity
