"""A host's network link to nats-server that can go away and come back: a TCP relay on
loopback between the host (and the providers it starts) and the server.

While the link is cut no byte is read on either side: the bytes wait in the kernel's
buffers, and neither end gets a reset or a close, as behind a network link that went
dark (TCP retransmits for minutes before giving up). When the link comes back the
bytes flow again, in order. Nothing leaves loopback."""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._flowing = threading.Event()
        self._flowing.set()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def cut(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                inside, _ = self._listener.accept()
                outside = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                if self._closed:
                    return
                continue  # the server is not there: the client sees its connection drop
            outside.settimeout(None)
            self._sockets += [inside, outside]
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = source.recv(65536)
                self._flowing.wait()  # read just before the cut: held until the link is back
                if not data or self._closed:
                    break
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
