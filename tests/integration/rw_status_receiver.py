#!/usr/bin/env python3
"""A loopback remote-write endpoint that answers chosen status codes, for
the status-code behaviour no real receiver shows on demand.

    rw_status_receiver.py STATUS N [RETRY_AFTER]

Binds 127.0.0.1 on a free port and prints the port. The first N POSTs get
STATUS (with Retry-After: RETRY_AFTER when given), later ones 204. GET
/requests lists every POST, one per line:

    t=<monotonic seconds> status=<answer> len=<body bytes> enc=<Content-Encoding> type=<Content-Type> version=<X-Prometheus-Remote-Write-Version>
"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATUS = int(sys.argv[1])
N = int(sys.argv[2])
RETRY_AFTER = sys.argv[3] if len(sys.argv) > 3 else None
LOCK = threading.Lock()
REQUESTS = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        with LOCK:
            data = "".join(r + "\n" for r in REQUESTS).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with LOCK:
            k = len(REQUESTS)
            status = STATUS if k < N else 204
            REQUESTS.append("t=%.3f status=%d len=%d enc=%s type=%s version=%s" % (
                time.monotonic(), status, len(body), self.headers.get("Content-Encoding"),
                self.headers.get("Content-Type"),
                self.headers.get("X-Prometheus-Remote-Write-Version")))
        self.send_response(status)
        if status == 429 and RETRY_AFTER is not None:
            self.send_header("Retry-After", RETRY_AFTER)
        msg = b"refused by the test\n" if status >= 300 else b""
        self.send_header("Content-Length", str(len(msg)))
        self.end_headers()
        self.wfile.write(msg)


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
