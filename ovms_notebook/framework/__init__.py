"""MediaPipe-level primitives with no serving in them: timestamps, options protos, trace data, subgraphs."""
