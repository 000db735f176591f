"""Certificate authorities and leaves made with the openssl CLI."""
import base64
import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from .common import *  # noqa: F401,F403


class Pki:
    """Certificate authorities and leaves made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def ca(self, name, cn=None, days=30):
        key, crt = self.dir / f"{name}.key", self.dir / f"{name}.crt"
        if not crt.exists():
            run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", str(key), "-out", str(crt), "-days", str(days),
                "-subj", f"/CN={cn or name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return crt

    def ca_between(self, name, start, end):
        """A self-signed CA valid from START to END ('YYYYMMDDHHMMSSZ'), which may
        be in the past (expired) or the future (not valid yet)."""
        crt = self.dir / f"{name}.crt"
        if crt.exists():
            return crt
        work = self.dir / f"{name}.ca"
        (work / "db").mkdir(parents=True)
        (work / "db" / "index.txt").write_text("")
        (work / "db" / "serial").write_text("01\n")
        (work / "ca.cnf").write_text(
            f"[ca]\ndefault_ca = d\n[d]\ndir = {work}\ndatabase = {work}/db/index.txt\n"
            f"serial = {work}/db/serial\nnew_certs_dir = {work}/db\ndefault_md = sha256\n"
            "policy = p\nx509_extensions = e\n[p]\ncommonName = supplied\n"
            "[e]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n")
        key, csr = self.dir / f"{name}.key", work / "req.csr"
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        run("openssl", "ca", "-batch", "-config", str(work / "ca.cnf"), "-selfsign", "-keyfile",
            str(key), "-in", str(csr), "-out", str(crt), "-startdate", start, "-enddate", end,
            "-notext")
        return crt

    def leaf(self, name, ca, sans, cn=None):
        """A server certificate for SANS (e.g. 'DNS:localhost,IP:127.0.0.1') signed by CA."""
        key, csr, crt = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        if not crt.exists():
            ext = self.dir / f"{name}.ext"
            ext.write_text(f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
                           "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
            run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn or name}")
            run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca),
                "-CAkey", str(ca.with_suffix(".key")), "-CAcreateserial", "-out", str(crt),
                "-days", "30", "-extfile", str(ext))
        return crt, key

    @staticmethod
    def fingerprints(pem_text):
        """SHA-256 of each certificate in PEM_TEXT, in order."""
        import re
        blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem_text,
                            re.S)
        return [Pki.fingerprint(b + "\n") for b in blocks]

    @staticmethod
    def fingerprint(crt):
        """SHA-256 of a certificate given as a path or as text holding PEM."""
        pem = crt if isinstance(crt, str) else pathlib.Path(crt).read_text()
        out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem,
                             capture_output=True, text=True).stdout
        return out.strip().split("=", 1)[1].replace(":", "").lower() if "=" in out else None
