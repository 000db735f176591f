"""The built binary run with a generated config, and a systemd notify socket."""
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


class NotifySocket:
    """Plays systemd's side of $NOTIFY_SOCKET: records every datagram."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path.startswith("@"):
            self.sock.bind("\0" + path[1:])
        else:
            self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.path = path
        self.messages = []  # (monotonic time, {key: value})

    def drain(self):
        try:
            while True:
                data = self.sock.recv(4096).decode()
                fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
                self.messages.append((time.monotonic(), fields))
        except (socket.timeout, BlockingIOError):
            pass
        return self.messages

    def wait(self, key, value=None, after=0, timeout=10):
        def seen():
            return next((f for t, f in self.drain() if t > after and key in f
                         and (value is None or f[key] == value)), None)
        return wait_for(seen, timeout, f"{key}={value or '*'} on the notify socket")


class Daemon:
    """The built binary, run with a generated config; its stderr is kept."""

    def __init__(self, directory, server, instances, token=GOOD_TOKEN, **settings):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True)
        self.cert_dir = self.dir / "certs"
        self.token_file = self.dir / "token"
        self.token_file.write_text(token + "\n")
        self.token_file.chmod(0o600)  # as a careful operator would
        self.config = self.dir / "rootcertd.yaml"
        self.log = self.dir / "rootcertd.log"
        self.server = server
        self.proc = None
        self.write_config(instances, **settings)

    def write_config(self, instances, **settings):
        api = {"url": self.server.url, "token_file": str(self.token_file),
               "ca_file": str(self.server.trust), "timeout": "5s"}
        extra = settings.pop("api", {})
        cfg = {"cert_dir": str(self.cert_dir), "state_dir": str(self.dir / "state"),
               "refresh_interval": "1h",
               "retry": {"min": "100ms", "max": "1s"}}
        if extra is not None:  # api=None: a fleet without Tembo has no api section
            api.update(extra)
            cfg["api"] = api
        cfg.update(settings)
        cfg["instances"] = instances
        # JSON is YAML: no dependency on a YAML writer.
        self.config.write_text(json.dumps(cfg, indent=2))

    def file(self, name):
        return self.cert_dir / f"{name}.crt"

    def once(self, *extra, timeout=60, env=None):
        return subprocess.run([str(BINARY), "--config", str(self.config), "--once", *extra],
                              capture_output=True, text=True, timeout=timeout, env=env)

    def start(self, *extra, env=None):
        self.log_handle = open(self.log, "w")
        self.proc = subprocess.Popen([str(BINARY), "--config", str(self.config), *extra],
                                     stdout=self.log_handle, stderr=subprocess.STDOUT, env=env)
        return self

    def output(self):
        return self.log.read_text() if self.log.exists() else ""

    def wait_log(self, text, timeout=10.0, count=1):
        return wait_for(lambda: self.output().count(text) >= count, timeout, f"log line {text!r}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=5):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None
