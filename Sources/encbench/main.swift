print("encd: not built yet")
