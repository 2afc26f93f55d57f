"""`ovms-notebook serve CONFIG`: the same server outside a kernel, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from ovms_notebook import __version__
from ovms_notebook.errors import OvmsNotebookError
from ovms_notebook.runtime.session import TIMESTAMP_CHECKS
from ovms_notebook.runtime.timestamps import TIMESTAMP_MODES


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per job."""
    parser = argparse.ArgumentParser(prog="ovms-notebook", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ovms-notebook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the graphs of an OVMS config.json over KServe gRPC")
    serve.add_argument("config", help="an OVMS config.json, or a folder holding one")
    serve.add_argument("--port", type=int, default=9000, help="port to listen on (0 picks a free one; default 9000)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    serve.add_argument("--timestamps", choices=TIMESTAMP_MODES, default="counter",
                       help="automatic timestamps: counter (0, +1; OVMS docs) or wallclock (µs; OVMS 2025.1+)")
    serve.add_argument("--timestamp-check", choices=TIMESTAMP_CHECKS, default="strict",
                       help="strict: reject a non-increasing timestamp in-band; mediapipe: let the graph fail as OVMS")
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ovms-notebook` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ovms_notebook.server.lifecycle import serve

    try:
        server = serve(args.config, port=args.port, host=args.host, timestamps=args.timestamps,
                       timestamp_check=args.timestamp_check)
    except (OvmsNotebookError, ValueError) as error:
        print(f"ovms-notebook: {error}", file=sys.stderr)
        return 2
    for definition in server.graphs:
        state = "ready" if definition.available else f"NOT READY: {definition.error}"
        print(f"  graph {definition.name}: {state}")
    print(f"serving on {server.address} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
