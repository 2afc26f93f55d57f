"""TLS overhead: the same pass-through stream over TLS (and mutual TLS) ÷ over a plain channel.

Three in-process servers on one pass-through graph — plain, TLS, mutual TLS — with certificates from
`ovms_notebook.tls.make_certificates`. Per round and per server, one StreamClient stream sends
`--count` requests lock-step (send, wait for the answer) with a small FP32[16] and a large
480x640x3 UINT8 frame; rounds interleave the servers so a noisy shared machine affects all alike.
Printed: median round trip over TLS ÷ plain and mutual TLS ÷ plain, per payload (the handshake
happens once per stream, before the clock).

Run: .venv/bin/python bench/tls_overhead.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, report

from ovms_notebook import tls
from ovms_notebook.client import StreamClient
from ovms_notebook.server.lifecycle import Server

PAYLOADS = {"FP32[16]": np.arange(16, dtype=np.float32),
            "UINT8[480,640,3]": np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)}


def lockstep(address: str, credentials: object, value: np.ndarray, count: int) -> list[float]:
    """Per-request round trips on one stream, after one untimed request (connection and handshake)."""
    with StreamClient(address, "passthrough", credentials=credentials, max_log=8) as client:  # type: ignore[arg-type]
        client.send({"in": value})
        client.wait_for(1)
        times = []
        for number in range(2, count + 2):
            start = time.perf_counter()
            client.send({"in": value})
            client.wait_for(number)
            times.append(time.perf_counter() - start)
        client.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="requests per stream and round (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    config = REPO / "graphs"
    with tempfile.TemporaryDirectory() as folder:
        certs = tls.make_certificates(Path(folder))
        servers = {
            "plain": (Server(config), None),
            "TLS": (Server(config, tls_cert=certs.server_cert, tls_key=certs.server_key),
                    tls.client_credentials(certs.ca)),
            "mutual TLS": (Server(config, tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca),
                           tls.client_credentials(certs.ca, certs.client_cert, certs.client_key)),
        }
        for server, _ in servers.values():
            server.start()
        try:
            for payload, value in PAYLOADS.items():
                count = args.count if value.nbytes < 1 << 20 else max(10, args.count // 10)
                times: dict[str, list[float]] = {name: [] for name in servers}
                for _ in range(args.rounds):
                    for name, (server, credentials) in servers.items():
                        times[name] += lockstep(server.address, credentials, value, count)
                medians = {name: statistics.median(values) for name, values in times.items()}
                detail = ", ".join(f"{name} {medians[name] * 1e3:.3f} ms" for name in servers)
                for name in ("TLS", "mutual TLS"):
                    report(f"{name} ÷ plain, {payload}, median round trip", medians[name] / medians["plain"],
                           "informational", f"{count} x {args.rounds} rounds; {detail}")
        finally:
            for server, _ in servers.values():
                server.stop()


if __name__ == "__main__":
    main()
