#!/usr/bin/env python3
# A tiny client of encd's control socket for the integration tests (no encctl):
#   encd_ctl.py SOCKET 'JSON request' [python expression over the response r]
# prints the response (or the expression's value);
#   encd_ctl.py SOCKET --monitor KINDS SECONDS
# prints "subscribed", then every event, and succeeds once each kind in the
# comma-separated KINDS was seen.
import json, socket, struct, sys, time

def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data

def receive(s):
    header = recv_exact(s, 4)
    if header is None:
        return None
    body = recv_exact(s, struct.unpack(">I", header)[0])
    return json.loads(body)

def connect(path, request, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    request.setdefault("version", 1)
    body = json.dumps(request).encode()
    s.sendall(struct.pack(">I", len(body)) + body)
    return s

path = sys.argv[1]
if sys.argv[2] == "--monitor":
    want = set(sys.argv[3].split(","))
    deadline = time.time() + float(sys.argv[4])
    s = connect(path, {"command": "monitor"}, float(sys.argv[4]))
    ack = receive(s)
    assert ack["ok"] and ack.get("event") is None, ack
    print("subscribed", flush=True)
    while want and time.time() < deadline:
        r = receive(s)
        if r is None:
            break
        print(json.dumps(r["event"], sort_keys=True), flush=True)
        want.discard(r["event"]["kind"])
    sys.exit(0 if not want else 1)
r = receive(connect(path, json.loads(sys.argv[2]), 10))
if len(sys.argv) > 3:
    print(eval(sys.argv[3], {"r": r}))
else:
    print(json.dumps(r, sort_keys=True))
