raise RuntimeError("import-time-failure-marker")
