"""A small programmable TLS server for faults nginx cannot stage.

The instance id in the request path picks the fault:
  reset        headers promise 4000 bytes, 100 arrive, then a TCP reset
  badchunk     Transfer-Encoding: chunked with a malformed chunk size
  short        Content-Length: 5000, 100 bytes, then a clean close
  long         Content-Length: 10 in front of a longer valid JSON body
  hugeheader   a 64 KiB response header
  eofbody      ca_json as a body without a length, ended by closing TLS (close_notify)
  keptclosed   ca_json with a length and keep-alive, then the connection is closed
A second port accepts TCP and never answers the TLS handshake."""
import socket
import ssl
import struct
import threading


class FaultServer:
    def __init__(self, cert, key):
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stall = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stall_port = self.stall.getsockname()[1]
        self.held = []
        self.accepted = 0
        self.ca_json = b"{}"  # the body of eofbody and keptclosed
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()
        threading.Thread(target=self._hold, daemon=True).start()

    def _hold(self):
        while self.running:
            try:
                conn, _ = self.stall.accept()
                self.held.append(conn)  # never speaks TLS
            except OSError:
                return

    def _serve(self):
        while self.running:
            try:
                raw, _ = self.sock.accept()
                self.accepted += 1
            except OSError:
                return
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw):
        try:
            conn = self.tls.wrap_socket(raw, server_side=True)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            fault = request.split(b" ")[1].decode().split("/")[6]
            getattr(self, "_" + fault)(conn)
        except (OSError, ssl.SSLError, IndexError, AttributeError):
            pass

    @staticmethod
    def _reset(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
                     + b'{"ca.crt": "' + b"A" * 88)
        # Linger 0: close() sends a TCP reset instead of a clean shutdown.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    @staticmethod
    def _badchunk(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        conn.close()

    @staticmethod
    def _short(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
        conn.close()

    @staticmethod
    def _long(conn):
        body = b'{"ca.crt": "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + body)
        conn.close()

    @staticmethod
    def _hugeheader(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * 65536 + b"\r\nContent-Length: 2\r\n\r\n{}")
        conn.close()

    def _eofbody(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + self.ca_json)
        conn.unwrap().close()

    def _keptclosed(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.ca_json)
                     + self.ca_json)
        conn.unwrap().close()  # says nothing: the client finds out when it reuses it

    def stop(self):
        self.running = False
        self.sock.close()
        self.stall.close()
        for c in self.held:
            c.close()
