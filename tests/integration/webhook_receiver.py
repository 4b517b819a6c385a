#!/usr/bin/env python3
"""A loopback webhook receiver for the alerting tests.

    webhook_receiver.py MODE [N]

Binds 127.0.0.1 on a free port, prints the port on stdout, then serves until
killed. Every POST is recorded; GET /requests lists them, one per line:

    t=<monotonic seconds> status=<answer> json=<0|1> path=<path> auth=<Authorization> body=<body>

(status=0 for a request that is never answered). Modes:
    ok          answer 200
    fail N      answer 503 to the first N requests, then 200
    status S    always answer S
    hang        accept the request and never answer
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
ARG = int(sys.argv[2]) if len(sys.argv) > 2 else 0
LOCK = threading.Lock()
REQUESTS = []
SEEN = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        with LOCK:
            text = "".join(line + "\n" for line in REQUESTS)
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        try:
            json.loads(body)
            ok = 1
        except ValueError:
            ok = 0
        with LOCK:
            SEEN[0] += 1
            k = SEEN[0]
        if MODE == "fail":
            status = 503 if k <= ARG else 200
        elif MODE == "status":
            status = ARG
        elif MODE == "hang":
            status = 0
        else:
            status = 200
        line = "t=%.6f status=%d json=%d path=%s auth=%s body=%s" % (
            time.monotonic(), status, ok, self.path,
            self.headers.get("Authorization", "-").replace(" ", "_"),
            body.replace("\n", " "))
        with LOCK:
            REQUESTS.append(line)
        if status == 0:
            time.sleep(3600)
            return
        data = b'{"ok":true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
