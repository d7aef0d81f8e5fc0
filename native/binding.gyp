{
  "targets": [
    {
      "target_name": "layerfs_native",
      "sources": ["layerfs_native.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
