#!/usr/bin/env python3
"""A client of `tern sidecar` using only the Python standard library.

It sends messages with idempotency keys, streams incoming events (Server-Sent
Events), acknowledges them, and resumes after a restart without losing or
repeating one:

- the app keeps its own durable record (here a text file, `--db`): each
  processed event is written there with its id *before* it is acknowledged;
- on start it reads the highest id it processed and resumes the stream after
  it (`Last-Event-ID`), then acknowledges that id, so events it processed
  but had not acknowledged when it died are not applied twice, and events
  it never processed come again (the sidecar releases nothing that was not
  acknowledged).

    python3 tern_sidecar.py --socket STATE/sidecar.sock send --to 2 --text hi --key order-1
    python3 tern_sidecar.py --socket STATE/sidecar.sock receive --db inbox.txt --count 10
    python3 tern_sidecar.py --url http://127.0.0.1:8080 --token-file STATE/api.token status
"""

import argparse
import http.client
import json
import os
import socket
import sys


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (the sidecar's default listener)."""

    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class SidecarError(Exception):
    def __init__(self, status, body):
        self.status, self.body = status, body
        super().__init__(f"HTTP {status}: {body.get('error')} (field {body.get('field')})")


class Sidecar:
    def __init__(self, socket_path=None, url=None, token=None):
        self.socket_path, self.token = socket_path, token
        if url:
            rest = url.split("://", 1)[-1].rstrip("/")
            self.host, _, port = rest.partition(":")
            self.port = int(port or 80)

    def _conn(self, timeout=30):
        if self.socket_path:
            return UnixHTTPConnection(self.socket_path, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, extra=None):
        h = {"Content-Type": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def request(self, method, path, body=None):
        c = self._conn()
        try:
            data = None if body is None else json.dumps(body)
            c.request(method, path, body=data, headers=self._headers())
            r = c.getresponse()
            payload = r.read()
            parsed = json.loads(payload) if payload else {}
            if r.status >= 400:
                raise SidecarError(r.status, parsed)
            return r.status, parsed
        finally:
            c.close()

    def send(self, to, text, conv=1, key=None, wait="queued"):
        body = {"to": to, "conv": conv, "text": text}
        if key:
            body["idempotency_key"] = key
        return self.request("POST", f"/v1/messages?wait={wait}", body)[1]

    def ack(self, up_to):
        return self.request("POST", "/v1/events/ack", {"up_to": up_to})[1]

    def events(self, last_event_id=None, idle_ms=None):
        """Yields (id, event type, data dict) from the SSE stream."""
        path = "/v1/events" + (f"?idle_ms={idle_ms}" if idle_ms else "")
        extra = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            extra["Last-Event-ID"] = str(last_event_id)
        c = self._conn(timeout=None)
        c.request("GET", path, headers=self._headers(extra))
        r = c.getresponse()
        if r.status != 200:
            raise SidecarError(r.status, json.loads(r.read() or b"{}"))
        ev = {}
        try:
            while True:
                line = r.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if line == "":
                    if "data" in ev:
                        yield int(ev["id"]) if "id" in ev else None, ev.get("event"), json.loads(ev["data"])
                    ev = {}
                elif not line.startswith(":"):
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    ev[k] = ev[k] + "\n" + v if k == "data" and k in ev else v
        finally:
            c.close()


def last_processed(db):
    """The highest event id the app has durably processed (0: none)."""
    try:
        with open(db) as f:
            ids = [int(line.split(" ", 1)[0]) for line in f if line.strip()]
        return max(ids, default=0)
    except FileNotFoundError:
        return 0


def receive(sc, db, count, ack_every, stop_after):
    last = last_processed(db)
    if last:
        sc.ack(last)  # processed before a crash, maybe never acknowledged
    messages = sum(1 for line in open(db)) if os.path.exists(db) else 0
    print(f"resuming after event {last} ({messages} messages processed so far)", flush=True)
    processed = 0
    with open(db, "a") as out:
        for eid, kind, data in sc.events(last_event_id=last or None):
            if kind == "reset":
                print("the server's inbox started again", flush=True)
                continue
            if kind == "message":
                out.write(f"{eid} {data.get('text', '')}\n")
                out.flush()
                os.fsync(out.fileno())
                messages += 1
            processed += 1
            if stop_after and processed >= stop_after:
                print(f"stopping abruptly after {processed} events (last {eid})", flush=True)
                os._exit(3)
            if processed % ack_every == 0 or messages >= count:
                sc.ack(eid)
            if messages >= count:
                print(f"received {messages} messages", flush=True)
                return


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="the sidecar's Unix socket")
    where.add_argument("--url", help="http://127.0.0.1:PORT (the sidecar's --listen)")
    p.add_argument("--token-file", help="with --url: the bearer token file")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="send messages (text, or PREFIX0..PREFIXn with --count)")
    s.add_argument("--to", type=int, required=True)
    s.add_argument("--conv", type=int, default=1)
    s.add_argument("--text", required=True)
    s.add_argument("--count", type=int, default=0, help="send TEXT0..TEXTn-1")
    s.add_argument("--key", help="idempotency key (KEY0.. with --count)")
    s.add_argument("--wait", default="queued", choices=["queued", "stored", "delivered"])
    r = sub.add_parser("receive", help="stream, record and acknowledge messages")
    r.add_argument("--db", required=True, help="the app's durable record of processed events")
    r.add_argument("--count", type=int, required=True, help="stop once this many messages are recorded")
    r.add_argument("--ack-every", type=int, default=1)
    r.add_argument("--stop-after", type=int, default=0, help="exit abruptly after this many events (a crash)")
    sub.add_parser("status")
    a = p.parse_args()
    token = open(a.token_file).read().strip() if a.token_file else None
    sc = Sidecar(socket_path=a.socket, url=a.url, token=token)
    try:
        if a.cmd == "send":
            texts = [f"{a.text}{i}" for i in range(a.count)] if a.count else [a.text]
            for i, t in enumerate(texts):
                key = (f"{a.key}{i}" if a.count else a.key) if a.key else None
                op = sc.send(a.to, t, a.conv, key, a.wait)
                print(json.dumps(op), flush=True)
        elif a.cmd == "receive":
            receive(sc, a.db, a.count, a.ack_every, a.stop_after)
        else:
            print(json.dumps(sc.request("GET", "/v1/status")[1]))
    except SidecarError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
