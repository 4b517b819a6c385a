#!/usr/bin/env bash
# Ambiguous request framing (RFC 9112 sections 6 and 11.2: repeated or
# conflicting Content-Length, Transfer-Encoding with Content-Length, other
# transfer codings, Transfer-Encoding in HTTP/1.0, whitespace before the
# colon) gets 400 and a closed connection, over raw sockets.
set -euo pipefail
src="${SONDE_SOURCE_DIR:?}"
bin="${SONDE_BIN_DIR:?}"
port="$("$src/scripts/services.sh" free-port)"
SONDE_LISTEN="127.0.0.1:$port" "$bin/sonde-demo" --workers 1 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
    except OSError:
        time.sleep(0.1)
H = b"Host: x\r\n"
refused = {
    "conflicting Content-Length": b"POST /health HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "repeated Content-Length": b"POST /health HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "Content-Length list": b"POST /health HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello",
    "signed Content-Length": b"POST /health HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello",
    "Transfer-Encoding and Content-Length": b"POST /health HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "GET with both": b"GET /health HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "other coding": b"POST /health HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "chunked not last": b"POST /health HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "repeated Transfer-Encoding": b"POST /health HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "Transfer-Encoding in HTTP/1.0": b"POST /health HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "space before colon": b"POST /health HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello",
}
def send(req):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    data, closed = b"", False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                closed = True; break
            data += d
    except socket.timeout:
        pass
    s.close()
    return data, closed
bad = 0
for name, req in refused.items():
    data, closed = send(req)
    status = data.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 400") or not closed:
        print("FAIL %s: %r closed=%s" % (name, status, closed)); bad += 1
    else:
        print("ok   %s: 400, closed" % name)
data, closed = send(b"GET /health/live HTTP/1.1\r\n" + H + b"\r\n")
if not data.startswith(b"HTTP/1.1 200") or closed:
    print("FAIL a well-framed request: %r closed=%s" % (data[:40], closed)); bad += 1
sys.exit(1 if bad else 0)
PY
