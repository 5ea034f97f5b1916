"""A TCP relay in front of a real server: it records every byte that crosses the wire, and can cut a connection the
moment the client starts its TLS handshake (what a client sees when the server restarts mid-handshake).

Not a mock: the server on the other side is the private PostgreSQL or MariaDB; the relay only copies bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

TLS_HANDSHAKE = 0x16  # first byte of a TLS record carrying a handshake (the ClientHello)


@dataclass
class Relay:
    port: int
    cut_at_tls: bool = False
    captured: bytearray = field(default_factory=bytearray)
    connections: int = 0
    cut: int = 0  # connections cut at the client's TLS handshake
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, data: bytes) -> None:
        with self._lock:
            self.captured += data

    def seen(self, text: str | bytes) -> bool:
        needle = text.encode() if isinstance(text, str) else text
        with self._lock:
            return needle in self.captured


def _tls_record_start(data: bytes) -> int:
    """Where a TLS handshake record (type 22, version 3.x) starts in data, or -1."""
    for i in range(len(data) - 2):
        if data[i] == TLS_HANDSHAKE and data[i + 1] == 3 and data[i + 2] <= 4:
            return i
    return -1


def _pump(source: socket.socket, sink: socket.socket, relay: Relay, from_client: bool) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            hello = _tls_record_start(data) if from_client and relay.cut_at_tls else -1
            if hello >= 0:
                # Under load the client's SSLRequest packet and its ClientHello can arrive in one read: forward
                # what comes before the TLS record, then cut.
                relay.record(data[:hello])
                sink.sendall(data[:hello])
                relay.cut += 1
                break  # the ClientHello never reaches the server: the client reads EOF
            relay.record(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextmanager
def relay_to(host: str, port: int, *, cut_at_tls: bool = False) -> Iterator[Relay]:
    """Listen on a free port of 127.0.0.1 and relay each connection to host:port until the block ends."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    relay = Relay(listener.getsockname()[1], cut_at_tls)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            relay.connections += 1
            upstream = socket.create_connection((host, port), timeout=10)
            upstream.settimeout(None)
            client.settimeout(None)
            threading.Thread(target=_pump, args=(client, upstream, relay, True), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client, relay, False), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
