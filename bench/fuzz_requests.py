"""Fuzz run: N hypothesis-generated hostile ModelInferRequests as unary calls, N/10 hostile streams.

Uses the strategies and oracle of tests/test_fuzz_requests.py against one in-process server on the
malformed-request corpus's graphs (every OVMS tensor kind, images, extension kinds, a Python node, an
OpenVINO graph and model). Prints the count, the distribution of unary codes, stream endings and
in-band error kinds, every failure (a code outside the intended set, an unforeseen exception's text, a
lost valid answer, a server traceback), and the time inside a hostile unary call ÷ the time of a valid
unary call on the same server, measured after the run (generating the examples is not counted; the
ratio is below 1 when rejecting is cheaper than serving).

Run: .venv/bin/python bench/fuzz_requests.py [N] [--streams M] [--seed S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.test_fuzz_requests import (  # noqa: E402
    STREAM_GRAPHS,
    Tally,
    fuzz_server,
    mostly,
    requests,
    stream_once,
    unary_once,
)
from tests.test_malformed_corpus import valid_request  # noqa: E402
from tests.wire import infer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", nargs="?", type=int, default=10_000, help="hostile unary requests")
    parser.add_argument("--streams", type=int, default=None, help="hostile streams (default count / 10)")
    parser.add_argument("--seed", type=int, default=20260)
    args = parser.parse_args()
    streams = args.count // 10 if args.streams is None else args.streams
    tally = Tally()
    with tempfile.TemporaryDirectory() as root, fuzz_server(Path(root)) as fuzz:
        base = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))

        @seed(args.seed)
        @settings(base, max_examples=args.count)
        @given(message=requests())
        def unary_run(message: bytes) -> None:
            unary_once(fuzz.channel, message, tally)

        @seed(args.seed)
        @settings(base, max_examples=streams)
        @given(data=st.data())
        def stream_run(data: st.DataObject) -> None:
            graph = data.draw(st.sampled_from(STREAM_GRAPHS))
            messages = data.draw(st.lists(mostly(requests(graph), requests()), min_size=1, max_size=4))
            stream_once(fuzz.channel, graph, messages, tally)

        start = time.perf_counter()
        unary_run()
        unary_seconds = time.perf_counter() - start
        start = time.perf_counter()
        stream_run()
        stream_seconds = time.perf_counter() - start
        valid = valid_request("ov", 1.0, None).SerializeToString()
        start = time.perf_counter()
        for _ in range(1000):
            infer(fuzz.channel, valid)
        valid_seconds = (time.perf_counter() - start) / 1000
        tracebacks = [r.getMessage() for r in fuzz.catcher.records]
    unary_total = sum(tally.unary.values())
    print(f"hostile unary requests: {unary_total} in {unary_seconds:.1f} s")
    print("  codes: " + ", ".join(f"{code} {n}" for code, n in tally.unary.most_common()))
    print("  texts: " + ", ".join(f"{kind!r} {n}" for kind, n in tally.unary_kinds.most_common()))
    print(f"hostile streams: {sum(tally.stream.values())} in {stream_seconds:.1f} s "
          f"(each: valid opener, 1-4 hostile requests, valid closer)")
    print("  endings: " + ", ".join(f"{code} {n}" for code, n in tally.stream.most_common()))
    print("  in-band errors: " + ", ".join(f"{kind!r} {n}" for kind, n in tally.in_band.most_common()))
    print(f"failures: {len(tally.failures)}; server tracebacks: {len(tracebacks)}")
    for failure in tally.failures[:20]:
        print("  " + failure[:400])
    for text in tracebacks[:20]:
        print("  traceback: " + text[:400])
    print(f"time per hostile unary call / per valid unary call (calls only, generation excluded): "
          f"{tally.unary_seconds / max(unary_total, 1) / valid_seconds:.2f}")
    return 1 if tally.failures or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
