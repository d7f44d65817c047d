// MeshSimulator (placeholder).
