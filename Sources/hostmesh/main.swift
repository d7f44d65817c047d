print("hostmesh")
