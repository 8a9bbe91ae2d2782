"""Local alert receivers on loopback: a webhook endpoint and an SMTP server, each in a thread,
recording what they receive (the alerts' tests deliver to these, never outside)."""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """What a receiver got, in order; ``wait`` blocks until ``n`` items arrived."""

    items: list[Any] = field(default_factory=list)
    url: str = ""

    def wait(self, n: int = 1, timeout: float = 60.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.items) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.items)} of {n} item(s) in {timeout} s")
            time.sleep(0.05)
        return self.items


@contextlib.contextmanager
def webhook_receiver(status: int = 200) -> Iterator[Received]:
    """An HTTP server on a free loopback port recording each POST's JSON body and headers."""
    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.items.append({"json": json.loads(body), "headers": dict(self.headers)})
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    got: Received

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 localhost test SMTP")
        envelope: dict[str, Any] = {"rcpt": []}
        while line := self.rfile.readline():
            cmd = line.decode().strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 localhost")
            elif verb == "MAIL":
                envelope["from"] = cmd.split(":", 1)[1].strip()
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["rcpt"].append(cmd.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with .")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                message: Message = message_from_bytes(data)
                self.got.items.append({**envelope, "message": message})
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")  # RSET, NOOP


@contextlib.contextmanager
def smtp_receiver() -> Iterator[tuple[Received, int]]:
    """An SMTP server on a free loopback port; yields what it received and its port."""
    got = Received()
    handler = type("Handler", (_SMTPHandler,), {"got": got})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
