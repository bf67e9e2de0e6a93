#!/usr/bin/python3
"""Stand-ins for the services of a dify-cfg site whose images cannot be had
in the box rehearsal (Dify's api, worker, beat, web, sandbox and plugin
daemon), and the rehearsal's own hosts (the LLM endpoint, a host outside).

Each stand-in serves the port and health endpoint of the service it stands
for, answers every other request with a JSON body naming itself (so a probe
through nginx sees which service answered), and at start makes the
connections the real service makes, with the settings the generated
environment gives it:

  api, worker, beat (MODE, as Dify's entrypoint reads it): PostgreSQL with
      DB_*, Redis with REDIS_*, the Celery broker at CELERY_BROKER_URL; each
      writes a row to rehearsal_starts. The api also opens the vector store
      with PGVECTOR_* (creates the pgvector extension, stores and searches a
      vector), writes a file to its storage volume, and answers /health only
      when all of that worked.
  plugin_daemon: PostgreSQL with DB_* (creating DB_DATABASE when missing,
      as the daemon does) and Redis with REDIS_*.
  web, sandbox: their ports; the sandbox's own traffic leaves through the
      HTTP proxy its environment names (probed with curl inside it).

A stand-in that cannot make its connections exits non-zero, so the
container restarts and the rehearsal sees it. Nothing here is Dify's code.
"""

import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1] if len(sys.argv) > 1 else "api"
if ROLE == "api":
    # One image, three services: Dify's entrypoint picks by MODE.
    ROLE = {"worker": "worker", "beat": "beat"}.get(os.environ.get("MODE", "api"), "api")

STATE = {"ready": False, "checks": {}}
ACKS = {}
ACKS_LOCK = threading.Lock()


def log(msg):
    print(f"standin {ROLE}: {msg}", flush=True)


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        raise SystemExit(f"standin {ROLE}: {name} is not set")
    return value


def retry(what, fn, seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = fn()
            STATE["checks"][what] = "ok"
            log(f"{what}: ok")
            return result
        except Exception as err:  # noqa: BLE001 - every failure is retried
            if time.monotonic() > deadline:
                STATE["checks"][what] = f"failed: {err}"
                raise SystemExit(f"standin {ROLE}: {what}: {err}")
            time.sleep(1)


def postgres(prefix, user_key, db_key):
    import psycopg2

    return psycopg2.connect(
        host=env(f"{prefix}_HOST"),
        port=int(env(f"{prefix}_PORT", "5432")),
        user=env(f"{prefix}_{user_key}"),
        password=env(f"{prefix}_PASSWORD"),
        dbname=env(f"{prefix}_{db_key}"),
        connect_timeout=5,
    )


def write_start_row(conn):
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS rehearsal_starts "
            "(service text NOT NULL, at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("INSERT INTO rehearsal_starts (service) VALUES (%s)", (ROLE,))


def check_database():
    def connect():
        conn = postgres("DB", "USERNAME", "DATABASE")
        write_start_row(conn)
        conn.close()

    retry("database", connect)


def check_redis():
    import redis

    def connect():
        r = redis.Redis(
            host=env("REDIS_HOST"),
            port=int(env("REDIS_PORT", "6379")),
            password=os.environ.get("REDIS_PASSWORD") or None,
            db=int(os.environ.get("REDIS_DB", "0")),
            socket_timeout=5,
        )
        r.set(f"rehearsal:{ROLE}", "started")

    retry("redis", connect)


def check_broker():
    import redis

    def connect():
        r = redis.Redis.from_url(env("CELERY_BROKER_URL"), socket_timeout=5)
        r.lpush("rehearsal:broker", ROLE)

    retry("broker", connect)


def check_vector_store():
    def connect():
        conn = postgres("PGVECTOR", "USER", "DATABASE")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            cur.execute("CREATE TABLE IF NOT EXISTS rehearsal_vectors (id int, v vector(3))")
            cur.execute("INSERT INTO rehearsal_vectors VALUES (1, '[1,0,0]'), (2, '[0,1,0]')")
            cur.execute("SELECT id FROM rehearsal_vectors ORDER BY v <-> '[0.9,0.1,0]' LIMIT 1")
            nearest = cur.fetchone()[0]
        conn.close()
        if nearest != 1:
            raise RuntimeError(f"nearest vector is {nearest}, not 1")

    retry("vector store", connect)


def check_storage(path):
    def write():
        with open(os.path.join(path, "rehearsal-write-test"), "w") as f:
            f.write(ROLE)

    retry("storage", write, seconds=5)


def check_plugin_database():
    import psycopg2

    name = env("DB_DATABASE")

    def create():
        conn = psycopg2.connect(
            host=env("DB_HOST"), port=int(env("DB_PORT")), user=env("DB_USERNAME"),
            password=env("DB_PASSWORD"), dbname="postgres", connect_timeout=5,
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        conn = postgres("DB", "USERNAME", "DATABASE")
        write_start_row(conn)
        conn.close()

    retry("database", create)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body, sort_keys=True).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self):
        url = urllib.parse.urlsplit(self.path)
        body = {"service": ROLE, "method": self.command, "path": url.path}
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        while received < length:
            chunk = self.rfile.read(min(1 << 20, length - received))
            if not chunk:
                break
            received += len(chunk)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            received = self.read_chunked()
        if url.path in ("/health", "/health/check"):
            status = 200 if STATE["ready"] else 503
            return self.reply(status, {**body, "checks": STATE["checks"]})
        if url.path.endswith("/rehearsal/stream"):
            return self.stream()
        if url.path.endswith("/rehearsal/ack"):
            n = int(urllib.parse.parse_qs(url.query).get("n", ["0"])[0])
            with ACKS_LOCK:
                ACKS.setdefault(n, threading.Event()).set()
            return self.reply(200, {**body, "ack": n})
        if received:
            body["received"] = received
        status = 201 if url.path.endswith("/files/upload") else 200
        return self.reply(status, body)

    def read_chunked(self):
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return total
            total += len(self.rfile.read(size))
            self.rfile.readline()

    def stream(self):
        # Server-sent events, one at a time: event n+1 is sent only after
        # the client acknowledged event n through a second request. A proxy
        # that buffers the stream holds event 1 back, and the client never
        # acknowledges it: the stream then ends with an error event.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for n in (1, 2, 3):
            event = json.dumps({"service": ROLE, "event": n})
            self.wfile.write(f"data: {event}\n\n".encode())
            self.wfile.flush()
            with ACKS_LOCK:
                waiter = ACKS.setdefault(n, threading.Event())
            if not waiter.wait(30):
                self.wfile.write(b"data: {\"error\": \"no acknowledgement\"}\n\n")
                break
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = answer


def serve(port, tls=None):
    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    log(f"serving on port {port}")
    server.serve_forever()


def main():
    if ROLE == "api":
        check_database()
        check_redis()
        check_broker()
        check_vector_store()
        check_storage("/app/api/storage")
        STATE["ready"] = True
        serve(int(os.environ.get("DIFY_PORT", "5001")))
    elif ROLE in ("worker", "beat"):
        check_database()
        check_broker()
        if ROLE == "worker":
            check_redis()
            check_storage("/app/api/storage")
        STATE["ready"] = True
        while True:
            time.sleep(3600)
    elif ROLE == "plugin_daemon":
        check_plugin_database()
        check_redis()
        STATE["ready"] = True
        serve(int(env("SERVER_PORT", "5002")))
    elif ROLE == "web":
        STATE["ready"] = True
        serve(int(os.environ.get("PORT", "3000")))
    elif ROLE == "sandbox":
        STATE["ready"] = True
        serve(int(os.environ.get("SANDBOX_PORT", "8194")))
    elif ROLE in ("llm", "outside", "sshd"):
        # The rehearsal's own hosts (and a listener standing in for the
        # box's sshd): argv = role, port[, cert, key].
        STATE["ready"] = True
        tls = tuple(sys.argv[3:5]) if len(sys.argv) > 4 else None
        serve(int(sys.argv[2]), tls)
    else:
        raise SystemExit(f"standin: unknown role {ROLE}")


if __name__ == "__main__":
    main()
