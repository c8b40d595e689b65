#!/usr/bin/env python3
"""An HTTP proxy that adds a fixed latency to every request: a stand-in for
a remote object store in front of a local one (moto_server).

  latency_proxy.py --upstream http://127.0.0.1:PORT --port 0 --latency-ms 20 [--log FILE]

Prints "PORT" on stdout once it listens (a free port with --port 0). Each
client connection has its own thread (keep-alive connections are kept, one
upstream connection per thread), so requests sent in parallel wait out
their latency in parallel: 64 requests in flight take one latency, not 64.
The latency is added before the request is forwarded. Request headers are
forwarded unchanged (Host too: moto does not check signatures, and a
signing client signed the proxy's address). With --log, one line per
request: "<method> <path> <status> <seconds>" (a batched delete adds
"first-key=<its first key>"), and at exit (SIGTERM or
SIGINT) a line "max-in-flight N". Stdlib only.

Faults, all seeded by --seed:
  --reset-deletes N   reset the client's connection (TCP RST, no answer) on
                      the first N deletes: batched (S3 DeleteObjects,
                      `POST ?delete`) and, with --reset-deletes-of, single
                      (`DELETE`). --reset-deletes-of REGEX (repeatable) counts
                      only the deletes whose key (a batch's first <Key>, a
                      DELETE's path) matches REGEX, and gives each REGEX its
                      own N (one phase of a sweep each: its links, its
                      blobs, its staging).
  --reset-when        after: forward each of them to the store first (the
                      store acted, the client cannot know); before: do not.
  --error-rate P      answer a fraction P of all requests, without
                      forwarding them, 500 InternalError or 503 SlowDown
                      (half each), with S3's XML error body.
  --reset-rate P      reset the connection of a fraction P of all requests,
                      half before forwarding, half after the store acted.
Each fault is logged with the status -1 (reset) or the status sent.
"""
import argparse
import http.client
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
       "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}


class State:
    resets_left = [0]
    reset_after = True
    reset_of = None
    error_rate = 0.0
    reset_rate = 0.0
    rng = random.Random(0)
    lock = threading.Lock()
    in_flight = 0
    max_in_flight = 0
    log = None


def make_handler(upstream, latency):
    up = urllib.parse.urlsplit(upstream)
    local = threading.local()

    def connection(fresh=False):
        c = getattr(local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=300)
            local.conn = c
        return c

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            start = time.monotonic()
            status, key, batch = 0, "", False
            with State.lock:
                State.in_flight += 1
                State.max_in_flight = max(State.max_in_flight, State.in_flight)
            try:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                time.sleep(latency)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                query = urllib.parse.urlsplit(self.path).query
                with State.lock:
                    roll = State.rng.random()
                    coin = State.rng.random() < 0.5
                reset, after = False, State.reset_after
                key = ""
                batch = self.command == "POST" and "delete" in query.split("&")
                if batch or (self.command == "DELETE" and State.reset_of):
                    if batch:
                        key = re.search(rb"<Key>([^<]*)</Key>", body or b"")
                        key = key.group(1).decode() if key else ""
                    else:
                        key = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                    with State.lock:
                        for i, rx in enumerate(State.reset_of or [None]):
                            if (rx is None or rx.search(key)) and State.resets_left[i] > 0:
                                State.resets_left[i] -= 1
                                reset = True
                                break
                if not reset and roll < State.error_rate:
                    status = 500 if coin else 503
                    code, text = (("InternalError", "We encountered an internal error.")
                                  if status == 500 else
                                  ("SlowDown", "Please reduce your request rate."))
                    msg = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                           "<Message>%s</Message></Error>" % (code, text)).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(msg)
                    return
                if not reset and roll < State.error_rate + State.reset_rate:
                    reset, after = True, coin
                if reset:
                    if after:
                        c = connection(fresh=True)
                        c.request(self.command, self.path, body=body, headers=headers)
                        c.getresponse().read()
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    status = -1
                    return
                for attempt in (0, 1):
                    c = connection(fresh=attempt == 1)
                    try:
                        c.request(self.command, self.path, body=body, headers=headers)
                        r = c.getresponse()
                        data = r.read()
                        break
                    except (http.client.HTTPException, OSError):
                        if attempt == 1:
                            raise
                self.send_response(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                status = r.status
            except Exception as e:  # upstream gone: tell the client
                status = 502
                msg = str(e).encode()
                self.send_response(502)
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
            finally:
                with State.lock:
                    State.in_flight -= 1
                    if State.log:
                        State.log.write("%s %s %d %.4f%s\n" % (
                            self.command, self.path, status, time.monotonic() - start,
                            " first-key=" + key if batch else ""))
                        State.log.flush()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="http://host:port of the store")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--log", help="append one line per request here")
    ap.add_argument("--reset-deletes", type=int, default=0,
                    help="reset the connection of the first N DeleteObjects requests")
    ap.add_argument("--reset-when", choices=["before", "after"], default="after",
                    help="reset before forwarding, or after the store acted")
    ap.add_argument("--reset-deletes-of", metavar="REGEX", action="append",
                    help="count only the deletes whose key matches REGEX (repeatable, "
                         "each with its own count)")
    ap.add_argument("--error-rate", type=float, default=0.0,
                    help="answer this fraction of requests 500 or 503 SlowDown")
    ap.add_argument("--reset-rate", type=float, default=0.0,
                    help="reset the connection of this fraction of requests")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    a = ap.parse_args()
    State.reset_after = a.reset_when == "after"
    State.reset_of = [re.compile(r) for r in a.reset_deletes_of or []]
    State.resets_left = [a.reset_deletes] * max(1, len(State.reset_of))
    State.error_rate = a.error_rate
    State.reset_rate = a.reset_rate
    State.rng = random.Random(a.seed)
    if a.log:
        State.log = open(a.log, "a")
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 512
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(a.upstream, a.latency_ms / 1000))

    def stop(*_):
        if State.log:
            State.log.write("max-in-flight %d\n" % State.max_in_flight)
            State.log.flush()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
