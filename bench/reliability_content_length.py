"""Invalid Content-Length against a real ``rasa run`` (Sanic 21.12, pinned by rasa 3.6).

Sends one unauthenticated POST with ``Content-Length: -1`` or ``Content-Length: abc`` to the
WhatsApp webhook of a fresh ``rasa run``, then checks whether it still answers a health
check and how much CPU it burns meanwhile.

    .venv/bin/python -m bench.reliability_content_length
"""

from __future__ import annotations

import socket
import time

from bench.cpu import TICKS, _proc_ticks
from bench.reliability_common import save
from bench.stack import Stack


def raw(port: int, request: bytes, timeout: float = 5.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            return sock.recv(100).split(b"\r\n")[0].decode(errors="replace") or "closed"
        except TimeoutError:
            return "no answer"


def probe(length: bytes) -> dict:
    with Stack.start(rest=False, actions=False) as stack:
        port = stack.rasa_port
        health = b"GET /webhooks/whatsapp/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        before = raw(port, health)
        cpu0 = _proc_ticks(stack.rasa.pid)
        answer = raw(port, b"POST /webhooks/whatsapp/webhook HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\n{}")
        time.sleep(3)
        after = raw(port, health)
        cpu = (_proc_ticks(stack.rasa.pid) - cpu0) / TICKS
        return {"content_length": length.decode(), "health_before": before, "answer": answer,
                "health_after": after, "rasa_cpu_s_in_next_8_s": round(cpu, 1)}


def main() -> int:
    results = [probe(b"-1"), probe(b"abc")]
    for result in results:
        print(result, flush=True)
    print("saved", save("reliability-content-length", {"probes": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
