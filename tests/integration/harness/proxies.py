"""tinyproxy for CONNECT tunnels, and a recording TCP relay."""
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
from .nginx import FakeApi  # noqa: F401


class Tinyproxy:
    """Debian's tinyproxy on a free loopback port; BASIC_AUTH is (user, password)."""

    def __init__(self, directory, basic_auth=None):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "tinyproxy.log"
        auth = f"BasicAuth {basic_auth[0]} {basic_auth[1]}" if basic_auth else ""
        (self.dir / "tinyproxy.conf").write_text(f"""
Port {self.port}
Listen 127.0.0.1
Timeout 30
LogFile "{self.log}"
LogLevel Connect
MaxClients 100
{auth}
""")
        self.proc = subprocess.Popen(["tinyproxy", "-d", "-c", str(self.dir / "tinyproxy.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: FakeApi._listening(self.port), 10, "tinyproxy")

    def connects(self):
        """The CONNECT request lines tinyproxy logged, e.g. 'CONNECT localhost:443 HTTP/1.1'."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line.split("): ", 1)[1] for line in text.splitlines()
                if "Request (file descriptor" in line]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Recorder:
    """A TCP relay to TARGET_PORT that keeps every byte the client sent, to
    prove what crossed the wire in clear text."""

    def __init__(self, target_port):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.sent = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, src, dst, record):
        try:
            while data := src.recv(65536):
                if record:
                    with self.lock:
                        self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def client_bytes(self):
        with self.lock:
            return bytes(self.sent)

    def stop(self):
        self.listener.close()
