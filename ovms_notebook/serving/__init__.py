"""Serving graphs with OVMS's semantics: stream sessions, unary calls, request checks, the event log."""
