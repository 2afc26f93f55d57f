"""The gRPC side: server lifecycle and the thin KServe servicer."""
