print("sensgate")
