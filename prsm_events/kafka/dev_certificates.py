"""A throwaway certificate authority for the local secured broker (``prsm dev up --secure``).

Made with the ``openssl`` command at the broker's first start and kept under its directory:
the CA (``ca.pem``, which clients trust), the broker's key and certificate for 127.0.0.1 and
localhost (one PEM file, as Kafka's PEM keystore reads it), and on demand client
certificates for mutual TLS, whose common name is the Kafka principal. Never for production.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from prsm_events.errors import BrokerError

__all__ = ["DevCertificates"]

_DAYS = "825"


class DevCertificates:
    """The CA and certificates under ``dir``; ``ensure()`` makes what is missing.

    >>> DevCertificates(Path("/tmp/tls")).ca_file
    PosixPath('/tmp/tls/ca.pem')
    """

    def __init__(self, dir: Path) -> None:
        self.dir = dir

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """The broker's private key followed by its certificate and the CA's."""
        return self.dir / "broker-keystore.pem"

    def ensure(self) -> None:
        """Make the CA and the broker's certificate, once."""
        if self.ca_file.exists() and self.broker_keystore.exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        ca_key = self.dir / "ca.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
                 "-out", str(self.ca_file), "-days", _DAYS, "-subj", "/CN=prsm dev CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        key, cert = self._issue("broker", "localhost",
                                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                "extendedKeyUsage=serverAuth,clientAuth\n")
        self.broker_keystore.write_text(key.read_text() + cert.read_text()
                                        + self.ca_file.read_text())
        self.broker_keystore.chmod(0o600)

    def client(self, name: str) -> tuple[Path, Path]:
        """A client certificate and key (PEM) whose common name ``name`` is its principal."""
        self.ensure()
        return self._issue(f"client-{name}", name, "extendedKeyUsage=clientAuth\n")

    def _issue(self, stem: str, common_name: str, extensions: str) -> tuple[Path, Path]:
        key, csr, cert = (self.dir / f"{stem}.key", self.dir / f"{stem}.csr",
                          self.dir / f"{stem}.pem")
        ext = self.dir / f"{stem}.ext"
        ext.write_text("basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
                       "authorityKeyIdentifier=keyid\n" + extensions)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", f"/CN={common_name}")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_file),
                 "-CAkey", str(self.dir / "ca.key"), "-CAcreateserial", "-out", str(cert),
                 "-days", _DAYS, "-extfile", str(ext))
        key.chmod(0o600)
        csr.unlink()
        ext.unlink()
        return cert, key


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("`openssl` is needed to make the secured broker's certificates")
    done = subprocess.run([openssl, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {done.stderr.strip()}")
