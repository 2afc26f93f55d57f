"""`ovms-notebook serve CONFIG`: the same server outside a kernel, until Ctrl-C.

Like OVMS it re-reads config.json when the file changes (checked every second; `--file_system_poll_wait_seconds`
changes that, 0 turns it off) and on SIGHUP.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ovms_notebook._version import __version__
from ovms_notebook.errors import OvmsNotebookError
from ovms_notebook.framework.timestamps import TIMESTAMP_MODES
from ovms_notebook.server.servicer import DEFAULT_MAX_STREAMS
from ovms_notebook.server.watch import OVMS_POLL_SECONDS
from ovms_notebook.serving.outbox import DEFAULT_MAX_PENDING_BYTES, DEFAULT_MAX_PENDING_OUTPUTS
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
    serve.add_argument(
        "--timestamps",
        choices=TIMESTAMP_MODES,
        default="counter",
        help="automatic timestamps: counter (0, +1; OVMS docs) or wallclock (µs; OVMS 2025.1+)",
    )
    serve.add_argument(
        "--timestamp-check",
        choices=TIMESTAMP_CHECKS,
        default="strict",
        help="strict: reject a non-increasing timestamp in-band; mediapipe: let the graph fail as OVMS",
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="serve over TLS with this certificate (chain) file")
    serve.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    serve.add_argument(
        "--tls-client-ca", metavar="PEM", help="mutual TLS: accept only clients with a certificate signed by this CA"
    )
    serve.add_argument(
        "--file_system_poll_wait_seconds",
        "--file-system-poll-wait-seconds",
        type=float,
        default=OVMS_POLL_SECONDS,
        metavar="SECONDS",
        dest="poll",
        help="check config.json this often and reload it when it changed, as OVMS (default 1; 0: only on SIGHUP)",
    )
    serve.add_argument(
        "--max-streams",
        type=int,
        default=DEFAULT_MAX_STREAMS,
        help=f"open streams at most; the next one gets RESOURCE_EXHAUSTED (default {DEFAULT_MAX_STREAMS})",
    )
    serve.add_argument(
        "--max-pending-outputs",
        type=int,
        default=DEFAULT_MAX_PENDING_OUTPUTS,
        help="outputs of one stream waiting for its client at most; at the bound its requests are "
        f"not read until the client reads (default {DEFAULT_MAX_PENDING_OUTPUTS})",
    )
    serve.add_argument(
        "--max-pending-bytes",
        type=int,
        default=DEFAULT_MAX_PENDING_BYTES,
        help=f"the same bound in bytes (default {DEFAULT_MAX_PENDING_BYTES >> 20} MiB)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds a stop gives open streams to deliver what they hold (default 10)",
    )
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
        server = serve(
            args.config,
            port=args.port,
            host=args.host,
            timestamps=args.timestamps,
            timestamp_check=args.timestamp_check,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            file_system_poll_wait_seconds=args.poll,
            max_streams=args.max_streams,
            max_pending_outputs=args.max_pending_outputs,
            max_pending_bytes=args.max_pending_bytes,
            grace=args.grace,
        )
    except (OvmsNotebookError, ValueError) as error:
        print(f"ovms-notebook: {error}", file=sys.stderr)
        return 2
    for definition in server.graphs:
        state = "ready" if definition.available else f"NOT READY: {definition.error}"
        print(f"  graph {definition.name}: {state}")
    # A parent process reads this line for the port (with --port 0); SIGTERM stops as cleanly as Ctrl-C.
    tls = "" if server.tls == "off" else f" with {server.tls}"
    print(f"serving on {server.address}{tls} (Ctrl-C to stop)", flush=True)
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())

    def on_sighup(_signum: int, _frame: object) -> None:  # SIGHUP reloads, as OVMS
        reload.set()
        stop.set()

    signal.signal(signal.SIGHUP, on_sighup)
    try:
        while True:
            stop.wait()
            if not reload.is_set():
                break
            stop.clear()
            reload.clear()
            try:
                server.reload()
            except OvmsNotebookError as error:
                logging.getLogger("ovms_notebook.cli").error("reload on SIGHUP failed, serving on as before: %s", error)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
