"""`ovms-notebook serve CONFIG`: the same server outside a kernel, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ovms_notebook._version import __version__
from ovms_notebook.errors import OvmsNotebookError
from ovms_notebook.framework.timestamps import TIMESTAMP_MODES
from ovms_notebook.serving.session import TIMESTAMP_CHECKS


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
    serve.add_argument("--tls-cert", metavar="PEM", help="serve over TLS with this certificate (chain) file")
    serve.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    serve.add_argument("--tls-client-ca", metavar="PEM",
                       help="mutual TLS: accept only clients with a certificate signed by this CA")
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    from ovms_notebook.portability.commands import add_commands

    add_commands(commands)  # check, export
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ovms-notebook` command."""
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        from ovms_notebook.portability.commands import run

        return run(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ovms_notebook.server.lifecycle import serve

    try:
        server = serve(args.config, port=args.port, host=args.host, timestamps=args.timestamps,
                       timestamp_check=args.timestamp_check, tls_cert=args.tls_cert, tls_key=args.tls_key,
                       tls_client_ca=args.tls_client_ca)
    except (OvmsNotebookError, ValueError) as error:
        print(f"ovms-notebook: {error}", file=sys.stderr)
        return 2
    for definition in server.graphs:
        state = "ready" if definition.available else f"NOT READY: {definition.error}"
        print(f"  graph {definition.name}: {state}")
    # A parent process reads this line for the port (with --port 0); SIGTERM stops as cleanly as Ctrl-C.
    tls = "" if server.tls == "off" else f" with {server.tls}"
    print(f"serving on {server.address}{tls} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
