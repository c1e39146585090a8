"""TLS: the client's one SSL context, and a throwaway CA for the emulator's HTTPS mode."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from aliyun_sms_connector._errors import ConfigError

if TYPE_CHECKING:
    import ssl

__all__ = ["client_context", "make_certificates"]


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """The SSL context that verifies the SMS endpoint: ``ca_file``, else certifi's bundle.

    Loading a CA bundle costs tens of milliseconds of CPU, so a context is
    built once per file (and its size and modification time) and shared by
    every connector and by both the sync and async paths; an SSL context is
    safe to share between threads.

    Raises:
        ConfigError: ``ca_file`` cannot be read or holds no PEM certificate.
    """
    stamp = None
    if ca_file is not None:
        try:
            info = Path(ca_file).stat()
            stamp = (info.st_size, info.st_mtime_ns)
        except OSError:
            stamp = None
    context = _load(ca_file, stamp)
    if context is None:
        # Outside the except block: the ssl error's text is not chained.
        raise ConfigError("caFile: cannot be read as a PEM CA bundle") from None
    return context


@functools.lru_cache(maxsize=8)
def _load(ca_file: str | None, stamp: tuple[int, int] | None) -> ssl.SSLContext | None:
    import ssl  # noqa: PLC0415 - only HTTPS needs it

    del stamp  # part of the cache key only
    try:
        if ca_file is None:
            import certifi  # noqa: PLC0415 - a dependency of requests, hence of the SDK

            ca_file = certifi.where()
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError, ValueError):
        return None


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Write a CA and a 127.0.0.1/localhost certificate signed by it.

    Returns:
        The paths of the CA certificate, the server certificate and its key.
    """
    from cryptography import x509  # noqa: PLC0415 - installed with the SDK
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = dt.datetime.now(dt.timezone.utc)
    valid = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aliyun-sms emulator CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file
