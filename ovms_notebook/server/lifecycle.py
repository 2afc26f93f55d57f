"""Starting and stopping the in-kernel server, the way a notebook needs it.

`serve()` returns at once with a running `Server`; re-running the cell that
called it replaces the server that cell started (no leaked ports or threads),
while another cell's `serve()` gets a server of its own; `stop()` is idempotent and also runs at interpreter exit. The
gRPC server is the synchronous one on its own thread pool, never asyncio on
the kernel's loop. The pool has room for `max_streams` streams (each holds one
thread while open) plus `max_workers` for everything else, and streams are
counted against their own limit, so any number of open streams up to the limit
leaves health, metadata and unary calls their threads.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from ovms_notebook import display
from ovms_notebook._cell import CellOwned
from ovms_notebook._version import __version__
from ovms_notebook.errors import ServerError
from ovms_notebook.framework.trace import Trace
from ovms_notebook.repository.graphs import GraphDefinition, Repository
from ovms_notebook.server.servicer import DEFAULT_MAX_STREAMS, Servicer
from ovms_notebook.server.watch import ConfigWatch
from ovms_notebook.serving.events import EventLog
from ovms_notebook.serving.outbox import DEFAULT_MAX_PENDING_BYTES, DEFAULT_MAX_PENDING_OUTPUTS, check_bound
from ovms_notebook.serving.session import SessionOptions, StreamSession
from ovms_notebook.tls import PemSource, server_credentials

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 * 1024  # OVMS's gRPC message limit (1 GiB)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_MESSAGE_BYTES_LIMIT = 2**31 - 1  # gRPC keeps message limits in a signed 32-bit int

_registry: list[Server] = []  # every server serve() started and not yet stopped by stop_all()
_registry_lock = threading.Lock()
_made_by_cell = CellOwned()  # which cell's run started which server: a re-run replaces its own


class Server:
    """A KServe gRPC server for the graphs of one config.json, running on a thread pool in this process.

    Use `serve()` to create one. `address`/`port` say where it listens; `tls` is "off", "TLS" or
    "mutual TLS"; `stop()` ends it; as a context manager it stops on exit.
    """

    def __init__(
        self,
        config: str | Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        timestamps: str = "counter",
        timestamp_check: str = "strict",
        trace: bool = False,
        max_workers: int = 32,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_pending_outputs: int = DEFAULT_MAX_PENDING_OUTPUTS,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        grace: float = 10.0,
        file_system_poll_wait_seconds: float = 0.0,
        tls_cert: PemSource | None = None,
        tls_key: PemSource | None = None,
        tls_client_ca: PemSource | None = None,
    ) -> None:
        if max_workers < 2:
            raise ValueError(f"max_workers must be at least 2, got {max_workers}")
        check_bound("max_streams", max_streams)
        _check_seconds("grace", grace)
        _check_seconds("file_system_poll_wait_seconds", file_system_poll_wait_seconds)
        if (
            isinstance(max_message_bytes, bool)
            or not isinstance(max_message_bytes, int)
            or not (0 < max_message_bytes <= MAX_MESSAGE_BYTES_LIMIT)
        ):
            raise ValueError(
                f"max_message_bytes must be an integer from 1 to {MAX_MESSAGE_BYTES_LIMIT} (gRPC's "
                f"limit), got {max_message_bytes!r}"
            )
        self.options = SessionOptions(
            timestamps=timestamps,  # type: ignore[arg-type]  # checked by SessionOptions
            timestamp_check=timestamp_check,  # type: ignore[arg-type]
            trace=trace,
            max_pending_outputs=max_pending_outputs,
            max_pending_bytes=max_pending_bytes,
        )
        self._credentials = _tls_credentials(tls_cert, tls_key, tls_client_ca)  # checked before any bind
        self.tls = "off" if tls_cert is None else "mutual TLS" if tls_client_ca is not None else "TLS"
        self.repository = Repository(config)
        self.host = host
        self.requested_port = port
        self.max_workers = max_workers
        self.max_streams = max_streams
        self.max_message_bytes = max_message_bytes
        self.grace = float(grace)
        self.events = EventLog()
        self.servicer = Servicer(
            lambda: self.repository, self.options, self.events, __version__, max_streams, max_infers=max_workers
        )
        self._watch = ConfigWatch(self.reload, self.repository.config_path, file_system_poll_wait_seconds)
        self._lock = threading.Lock()
        self._grpc: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.port: int | None = None
        self.state = "created"

    # -- life -------------------------------------------------------------------------------------------------

    def start(self) -> Server:
        """Bind and start serving; a running server is returned unchanged."""
        with self._lock:
            if self.state == "running":
                return self
            if self.state == "stopped":
                raise ServerError("a stopped server cannot be restarted; call ovms_notebook.serve() again")
            # Threads are made as calls need them: a stream holds one while open, everything else shares the rest.
            calls = self.max_workers + self.max_streams
            executor = ThreadPoolExecutor(max_workers=calls, thread_name_prefix="ovms-grpc")
            server = grpc.server(
                executor,
                options=[
                    ("grpc.max_send_message_length", self.max_message_bytes),
                    ("grpc.max_receive_message_length", self.max_message_bytes),
                    ("grpc.so_reuseport", 0),  # a second bind of a fixed port must fail loudly
                    ("grpc.http2.max_frame_size", 16 * 1024 * 1024),  # fewer frames per video frame
                ],
                maximum_concurrent_rpcs=calls,
            )
            server.add_generic_rpc_handlers((self.servicer.handler(),))
            address = f"{_bracket(self.host)}:{self.requested_port}"
            try:
                if self._credentials is None:
                    port = server.add_insecure_port(address)
                else:
                    port = server.add_secure_port(address, self._credentials)
            except RuntimeError as error:
                executor.shutdown(wait=False)
                if self._credentials is not None and _plain_bind_works(address):
                    raise ServerError(
                        f"cannot listen on {address} with TLS: gRPC refused the certificate and key "
                        "(does tls_key belong to tls_cert?)"
                    ) from error
                raise ServerError(f"cannot listen on {address}: {error} (is the port in use?)") from error
            if not port:  # older grpcio reports a failed bind as 0
                executor.shutdown(wait=False)
                raise ServerError(f"cannot listen on {address} (is the port in use?)")
            if not is_loopback(self.host) and self.tls != "mutual TLS":
                log.warning(
                    "listening on %s:%s, reachable from other machines: there is no client authentication%s",
                    self.host,
                    port,
                    "" if self.tls == "TLS" else " and no encryption",
                )
            server.start()
            self._grpc, self._executor, self.port = server, executor, port
            self.state = "running"
            self._watch.start()
            atexit.register(self.stop)
            log.info(
                "serving %s on %s%s",
                self.repository.config_path,
                self.address,
                "" if self.tls == "off" else f" ({self.tls})",
            )
            return self

    def stop(self, grace: float | None = None) -> bool:
        """Stop serving: refuse new calls at once, end every open stream with its pending outputs and OK, close
        every graph instance, shut the thread pool down. True if it did anything.

        Streams get up to `grace` seconds (the server's `grace`, 10 s by default) in all to deliver what they
        hold, however slowly their clients read; whatever is still undelivered then is cancelled, and the log
        says which streams lost how many outputs. Calls that never sent a request end at once.
        """
        with self._lock:
            if self.state != "running":
                self.state = "stopped"
                return False
            self.state = "stopping"
            server, executor = self._grpc, self._executor
        grace = self.grace if grace is None else grace
        assert server is not None and executor is not None
        self._watch.stop()
        # New calls are refused at once; open streams are finished (inputs closed, graph drained) so each
        # client gets its outputs and the final status; what is left when the grace runs out is cancelled.
        server.stop(grace + 60.0)  # refuses new calls now; what is left is cancelled below, not by this timer
        given_up = self.servicer.close_all(timeout=grace)
        for line in given_up:
            log.warning("stop() gave up after %.1f s: %s", grace, line)
        self.servicer.cancel_all()
        server.stop(None).wait(5.0)  # what is left (idle calls, unread backlogs) is cancelled now
        executor.shutdown(wait=True, cancel_futures=True)
        atexit.unregister(self.stop)
        with self._lock:
            self.state = "stopped"
        log.info("server on %s stopped", self.address)
        return True

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it serves ---------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """`host:port` for clients (tritonclient's `url`)."""
        return f"{_bracket(self.host)}:{self.port if self.port is not None else self.requested_port}"

    @property
    def graphs(self) -> list[GraphDefinition]:
        """Every graph definition with its state (failed ones carry `.error`)."""
        return self.repository.definitions

    @property
    def sessions(self) -> list[StreamSession]:
        """Streams open right now."""
        return self.servicer.sessions

    def trace_for(self, stream: object = None) -> Trace | None:
        """The execution trace of a stream: `stream` is a `StreamClient` (anything with a `.tag`) or the tag it
        sent; None takes the stream that ended last. While the stream is open: what was recorded so far.

        A stream is traced when its client asked (`StreamClient(..., trace=True)`, i.e. gRPC metadata
        `ovms-notebook-trace: 1`) or the server was started with `serve(..., trace=True)`; None otherwise.
        """
        tag = stream if stream is None or isinstance(stream, str) else str(stream.tag)  # type: ignore[attr-defined]
        return self.servicer.trace_for(tag)

    @property
    def traces(self) -> dict[str, Trace]:
        """Execution traces of the last finished traced streams, by client tag ("stream-<id>" without one)."""
        return self.servicer.traces

    def reload(self) -> dict[str, str]:
        """Re-read config.json as OVMS does on a config reload; open streams keep their graph.

        Returns what happened to each graph and model ("loaded", "reloaded", "retired", "unchanged", ...). With
        `file_system_poll_wait_seconds` the server does this by itself whenever config.json changes.
        """
        changes = self.repository.reload()
        done = {name: change for name, change in changes.items() if change != "unchanged"}
        log.info("config reloaded: %s", ", ".join(f"{n} {c}" for n, c in done.items()) or "nothing changed")
        return changes

    def __repr__(self) -> str:
        graphs = ", ".join(f"{d.name}{'' if d.available else ' (' + d.state.value + ')'}" for d in self.graphs)
        tls = "" if self.tls == "off" else f" ({self.tls})"
        return f"<ovms_notebook.Server {self.state} on {self.address}{tls}: {graphs}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """A live server panel in Jupyter (graphs, drawings, packet counts); plain text elsewhere."""
        return display.mimebundle(self, **kwargs)


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")


def _tls_credentials(
    cert: PemSource | None, key: PemSource | None, client_ca: PemSource | None
) -> grpc.ServerCredentials | None:
    """Server credentials from the TLS options, or None for a plain server; a half-given set is an error."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError(
                "tls_client_ca (mutual TLS) needs tls_cert and tls_key too: the server must show a "
                "certificate before it can ask the client for one"
            )
        return None
    if cert is None or key is None:
        given = "tls_cert" if cert is not None else "tls_key"
        raise ValueError(f"TLS needs both tls_cert and tls_key; got only {given}")
    return server_credentials(cert, key, client_ca)


def _plain_bind_works(address: str) -> bool:
    """Whether `address` can be bound without TLS: tells a refused key pair from a port in use."""
    probe = grpc.server(ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)])
    try:
        return bool(probe.add_insecure_port(address))
    except RuntimeError:
        return False
    finally:
        probe.stop(None)


def is_loopback(host: str) -> bool:
    """True for names of this machine only: localhost, 127.0.0.0/8, ::1 (bracketed or not)."""
    bare = host.strip("[]")
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return bare in LOOPBACK_HOSTS


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def serve(config: str | Path, port: int = 0, host: str = "127.0.0.1", **options: Any) -> Server:
    """Start serving the graphs of `config` (an OVMS config.json or its folder) and return at once.

    Re-running the notebook cell that called it stops the server that cell's last run started, so
    re-executing a cell never leaks a server, port or thread; a `serve()` in another cell starts a server
    of its own beside it (outside a notebook cell, the earlier server for the same config is replaced).
    Options: timestamps ("counter" | "wallclock"), timestamp_check ("strict" |
    "mediapipe"), trace (record every stream's execution trace: `server.trace_for(client)`),
    max_workers (threads for calls other than streams, and the most ModelInfer calls at once, 32),
    max_streams (open streams at most, 1024; the next gets RESOURCE_EXHAUSTED), max_pending_outputs /
    max_pending_bytes (outputs of a stream waiting for its client, 100 / 64 MiB: at the bound its requests
    are not read until the client reads), max_message_bytes, grace (seconds stop() gives streams to deliver,
    10), file_system_poll_wait_seconds (check config.json that often and reload it when it changed, as OVMS;
    0, the default here, does not watch); tls_cert + tls_key (a path or PEM bytes each) serve over TLS, and
    tls_client_ca also requires clients to show a certificate it signed (mutual TLS).
    """
    server = Server(config, port=port, host=host, **options)
    key = server.repository.config_path
    for previous in _made_by_cell.claim(server, fallback_key=("server", key)):
        if previous.state != "stopped":
            log.info("replacing the server this cell started before, for %s on %s", key, previous.address)
            previous.stop()
    server.start()
    with _registry_lock:
        _registry[:] = [running for running in _registry if running.state != "stopped"]
        _registry.append(server)
    return server


def stop_all() -> int:
    """Stop every server started with `serve()`; returns how many were running."""
    with _registry_lock:
        servers = list(_registry)
        _registry.clear()
    return sum(server.stop() for server in servers)
