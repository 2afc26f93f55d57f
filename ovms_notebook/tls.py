"""TLS for the server and its clients: PEM material read and checked once, and certificates to try it with.

The server side (`server_credentials`) takes a certificate chain and its key, and optionally the
CA that client certificates must chain to (mutual TLS: a client without one is refused during the
handshake). The client side (`client_credentials`) returns `grpc.ChannelCredentials` that every
client of this package accepts (`StreamClient`, `infer`, the widgets' `credentials=`); it can also
carry the name to verify the server's certificate against, for a certificate issued to a name other
than the address dialled. Everything takes a path or the PEM bytes themselves, and a file that
is missing or holds no PEM block of the expected kind is reported here, with its name, rather than
as an opaque handshake failure later.

`make_certificates(folder)` writes a throw-away CA, a server certificate for localhost/127.0.0.1/::1
and a client certificate, so TLS can be tried in a notebook or a test without `openssl` commands
(needs the `cryptography` package: the `test` and `notebook` extras have it).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = [
    "CertificateFiles",
    "PemSource",
    "TlsChannelCredentials",
    "client_credentials",
    "make_certificates",
    "read_pem",
    "server_credentials",
]

PemSource = str | os.PathLike[str] | bytes
_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_KEY_MARKERS = (b"-----BEGIN PRIVATE KEY-----", b"-----BEGIN RSA PRIVATE KEY-----",
                b"-----BEGIN EC PRIVATE KEY-----")


def read_pem(source: PemSource, what: str, kind: str = "certificate") -> bytes:
    """The PEM bytes of `source` (a path, or the bytes themselves), checked to hold a `kind` block.

    `what` names the option in errors ("tls_cert"); `kind` is "certificate" or "private key".
    Raises ValueError saying what was expected and what came.
    """
    if isinstance(source, bytes | bytearray):
        data, origin = bytes(source), "the bytes given"
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ValueError(f"{what}: expected a readable PEM file, cannot read {path}: {error.strerror}") from None
        origin = str(path)
    else:
        raise ValueError(f"{what}: expected a path or PEM bytes, got {type(source).__name__}")
    markers = _KEY_MARKERS if kind == "private key" else (_CERTIFICATE,)
    if not any(marker in data for marker in markers):
        found = data.split(b"\n", 1)[0][:60].decode("ascii", "replace") if data else "an empty file"
        raise ValueError(f"{what}: expected a PEM {kind} ({markers[0].decode()}) in {origin}, found {found!r}")
    return data


def server_credentials(cert: PemSource, key: PemSource, client_ca: PemSource | None = None) -> grpc.ServerCredentials:
    """TLS credentials for `grpc.Server.add_secure_port`; with `client_ca`, clients must show a certificate
    signed by it (mutual TLS)."""
    cert_pem = read_pem(cert, "tls_cert")
    key_pem = read_pem(key, "tls_key", "private key")
    ca_pem = read_pem(client_ca, "tls_client_ca") if client_ca is not None else None
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem,
                                       require_client_auth=ca_pem is not None)


class TlsChannelCredentials(grpc.ChannelCredentials):
    """`grpc.ChannelCredentials` that also remember their PEM bytes and the server name to verify.

    Accepted wherever a client of this package takes `credentials`; `server_name`, when set, is the
    name the server's certificate must carry instead of the dialled host (gRPC's
    `grpc.ssl_target_name_override`). `tritonclient_options()` gives tritonclient's equivalent.
    """

    def __init__(self, root_ca: bytes | None, cert: bytes | None, key: bytes | None,
                 server_name: str | None, files: dict[str, str]) -> None:
        super().__init__(grpc.ssl_channel_credentials(root_ca, key, cert)._credentials)
        self.root_ca, self.cert, self.key = root_ca, cert, key
        self.server_name = server_name
        self._files = files

    @property
    def channel_options(self) -> list[tuple[str, str]]:
        """gRPC channel options these credentials need (the server name override, when set)."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def tritonclient_options(self) -> dict[str, object]:
        """Keyword arguments for `tritonclient.grpc.InferenceServerClient` (it wants file paths)."""
        options: dict[str, object] = {"ssl": True}
        for name, option in (("root_ca", "root_certificates"), ("key", "private_key"), ("cert", "certificate_chain")):
            if name in self._files:
                options[option] = self._files[name]
        if self.server_name:
            options["channel_args"] = self.channel_options
        return options

    def __repr__(self) -> str:
        parts = [f"root_ca={self._files.get('root_ca', 'system' if self.root_ca is None else 'bytes')}"]
        if self.cert is not None:
            parts.append(f"cert={self._files.get('cert', 'bytes')}")
        if self.server_name:
            parts.append(f"server_name={self.server_name!r}")
        return f"<TlsChannelCredentials {' '.join(parts)}>"


def client_credentials(root_ca: PemSource | None = None, cert: PemSource | None = None,
                       key: PemSource | None = None, server_name: str | None = None) -> TlsChannelCredentials:
    """Channel credentials for a TLS server: trust `root_ca` (None: the system's roots); `cert` and `key`
    are this client's certificate for mutual TLS (both or neither); `server_name` overrides the name
    the server certificate is checked against."""
    if (cert is None) != (key is None):
        raise ValueError("client TLS: expected both cert and key for mutual TLS, or neither; "
                         f"got {'cert' if cert is not None else 'key'} only")
    files = {name: str(Path(value).expanduser()) for name, value in (("root_ca", root_ca), ("cert", cert), ("key", key))
             if isinstance(value, str | os.PathLike)}
    return TlsChannelCredentials(
        read_pem(root_ca, "root_ca") if root_ca is not None else None,
        read_pem(cert, "cert") if cert is not None else None,
        read_pem(key, "key", "private key") if key is not None else None,
        server_name, files,
    )


@dataclass(frozen=True)
class CertificateFiles:
    """The PEM files `make_certificates` wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(folder: str | os.PathLike[str], hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
                      days: int = 30) -> CertificateFiles:
    """Write a throw-away CA, a server certificate for `hosts` and a client certificate into `folder`.

    For trying TLS on one machine, not for production: the CA key is not kept, so nothing else can
    ever be signed with it. Keys are ECDSA P-256, written readable by their owner only.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as error:
        raise ImportError("make_certificates needs the 'cryptography' package "
                          "(pip install cryptography, or the ovms-notebook[notebook] extra)") from error
    import ipaddress

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
              ca: bool, usage: list[x509.ObjectIdentifier], san: list[x509.GeneralName]) -> x509.Certificate:
        issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer_name))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path: Path, data: bytes, private: bool = False) -> Path:
        path.write_bytes(data)
        if private:
            path.chmod(0o600)
        return path

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def cert_pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    san: list[x509.GeneralName] = []
    for host in hosts:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            san.append(x509.DNSName(host))
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = "ovms-notebook test CA"
    ca = issue(ca_name, ca_key, None, True, [], [])
    server = issue(hosts[0] if hosts else "localhost", server_key, (ca_name, ca_key), False,
                   [ExtendedKeyUsageOID.SERVER_AUTH], san)
    client = issue("ovms-notebook client", client_key, (ca_name, ca_key), False, [ExtendedKeyUsageOID.CLIENT_AUTH], [])
    return CertificateFiles(
        ca=write(folder / "ca.pem", cert_pem(ca)),
        server_cert=write(folder / "server.pem", cert_pem(server)),
        server_key=write(folder / "server.key", key_pem(server_key), private=True),
        client_cert=write(folder / "client.pem", cert_pem(client)),
        client_key=write(folder / "client.key", key_pem(client_key), private=True),
    )
