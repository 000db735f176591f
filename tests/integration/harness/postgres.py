"""A throwaway PostgreSQL with TLS, and a verify-full client loop."""
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
from .pki import Pki  # noqa: F401


class ConnectionLoop:
    """A client connecting with verify-full about every 100 ms, recording each outcome."""

    def __init__(self, pg, rootcert):
        self.pg, self.rootcert = pg, rootcert
        self.results = []  # (monotonic time, ok, stderr)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            r = self.pg.psql_verify_full(self.rootcert)
            self.results.append((time.monotonic(), r.returncode == 0, r.stderr.strip()))
            self._stop.wait(0.1)

    def successes_after(self, t):
        return sum(1 for at, ok, _ in self.results if ok and at > t)

    def failures(self):
        return [(at, err) for at, ok, err in self.results if not ok]

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        return self.results


class Postgres:
    """A throwaway PostgreSQL cluster with TLS on a loopback port."""

    BIN = pathlib.Path("/usr/lib/postgresql/15/bin")

    def __init__(self, server_crt, server_key):
        # Outside pytest's 0700 tmp tree: the server may run as another user.
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="rootcertd-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "pgdata"
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
        if self.as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._install_certificate(server_crt, server_key)
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\nssl = on\n"
                       f"ssl_cert_file = '{self.dir}/server.crt'\n"
                       f"ssl_key_file = '{self.dir}/server.key'\n")
        (self.data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n"
                                               "local all all trust\n")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w", "start")

    def _install_certificate(self, server_crt, server_key):
        for src, name in ((server_crt, "server.crt"), (server_key, "server.key")):
            shutil.copy(src, self.dir / name)
            if self.as_user:
                pw = pwd.getpwnam("postgres")
                os.chown(self.dir / name, pw.pw_uid, pw.pw_gid)
        (self.dir / "server.key").chmod(0o600)

    def use_certificate(self, server_crt, server_key):
        """Switches the server to a new certificate (a reload, no restart) and
        returns once the server presents it."""
        self._install_certificate(server_crt, server_key)
        self._pg("pg_ctl", "-D", str(self.data), "reload")
        wanted = Pki.fingerprint(server_crt)
        wait_for(lambda: self.presented_fingerprint() == wanted, 10, "the reloaded certificate")

    def presented_fingerprint(self):
        """SHA-256 of the certificate the server presents in its TLS handshake."""
        hello = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                                f"127.0.0.1:{self.port}"], input="", capture_output=True,
                               text=True, timeout=10)
        return Pki.fingerprint(hello.stdout)

    def _pg(self, tool, *args):
        return run(*self.as_user, str(self.BIN / tool), *args)

    def psql_verify_full(self, rootcert, host="localhost"):
        """Connects with sslmode=verify-full; returns the completed process."""
        dsn = (f"host={host} port={self.port} user=postgres dbname=postgres "
               f"sslmode=verify-full sslrootcert={rootcert} connect_timeout=5")
        return self.psql(dsn)

    @staticmethod
    def psql(dsn, env=None):
        return subprocess.run(["psql", dsn, "-Atc", "select 1"], capture_output=True, text=True,
                              timeout=30, env=env)

    def stop(self):
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
