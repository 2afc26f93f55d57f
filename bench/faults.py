"""Faults at scale: clients vanishing mid-stream N times (cancel, channel close, SIGKILLed tritonclient
process, in turn) against one server, then what is left behind.

Prints leaked sessions, open and in-memory graph instances, our non-pool threads, OS threads and
listening ports (each after ÷ before, goal: no growth), and RSS after ÷ before (goal <= 1.05). The
"before" census is taken after a warm-up of every kind; gc.collect() before each census. A normal
stream is checked for correct timestamps at the end. The default run takes a few minutes, most of it
starting the killed client processes.

Run: .venv/bin/python bench/faults.py [--cycles N] [--kill-every K]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from common import REPO, STREAM

import ovms_notebook
from tests.vanish import request, settle, vanish


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000, help="vanishing clients in all (default 1000)")
    parser.add_argument("--kill-every", type=int, default=3,
                        help="every K-th client is a killed process; the others cancel or close in turn (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.json"
        config.write_text('{"mediapipe_config_list": [{"name": "passthrough", "base_path": "%s"}]}'
                          % (REPO / "graphs" / "passthrough"))
        with ovms_notebook.serve(config) as server:
            for kind in ("cancel", "close", "kill"):
                vanish(server.address, "passthrough", kind)
            before = settle(server)
            counts = {"cancel": 0, "close": 0, "kill": 0}
            start = time.perf_counter()
            for cycle in range(args.cycles):
                if (cycle + 1) % args.kill_every == 0:
                    kind = "kill"
                else:
                    kind = "cancel" if counts["cancel"] <= counts["close"] else "close"
                vanish(server.address, "passthrough", kind)
                counts[kind] += 1
            seconds = time.perf_counter() - start
            after = settle(server, before)
            with grpc.insecure_channel(server.address) as channel:
                call = channel.stream_stream(STREAM.path, request_serializer=STREAM.request.SerializeToString,
                                             response_deserializer=STREAM.response.FromString)
                stamps = [r.infer_response.parameters["OVMS_MP_TIMESTAMP"].int64_param
                          for r in call(iter([request("passthrough", v) for v in np.arange(3.0)]))]
    print(f"{args.cycles} vanishing clients in {seconds:.1f} s: {counts['cancel']} cancel, {counts['close']} channel "
          f"close, {counts['kill']} SIGKILLed tritonclient processes")
    print(f"sessions          before {before.sessions:>6}  after {after.sessions:>6}")
    print(f"open graphs       before {before.open_graphs:>6}  after {after.open_graphs:>6}")
    print(f"graphs in memory  before {before.graphs_in_memory:>6}  after {after.graphs_in_memory:>6}")
    print(f"our threads       before {len(before.stream_threads):>6}  after {len(after.stream_threads):>6}  "
          f"leaked {sorted(set(after.stream_threads) - set(before.stream_threads))}")
    print(f"OS threads (-pool) before {before.os_threads:>5}  after {after.os_threads:>6}  "
          f"leaked {max(0, after.os_threads - before.os_threads)}")
    print(f"listening ports   before {sorted(before.listening)}  after {sorted(after.listening)}")
    print(f"open fds          before {before.fds:>6}  after {after.fds:>6}")
    print(f"RSS MiB           before {before.rss_bytes / 2**20:>6.1f}  after {after.rss_bytes / 2**20:>6.1f}  "
          f"ratio {after.rss_bytes / before.rss_bytes:.3f} (goal <= 1.05)")
    print(f"a fresh stream afterwards: timestamps {stamps} (expected [0, 1, 2])")


if __name__ == "__main__":
    main()
