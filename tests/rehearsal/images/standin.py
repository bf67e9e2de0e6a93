#!/usr/bin/python3
"""Stand-ins for the services of a dify-cfg site whose images cannot be had
in the box rehearsal (Dify's web, sandbox and plugin daemon), and the
rehearsal's own hosts (the LLM endpoint, a host outside). Dify's api, worker
and beat are the real programs.

Each stand-in serves the port and health endpoint of the service it stands
for, answers every other request with a JSON body naming itself (so a probe
through nginx sees which service answered), and at start makes the
connections the real service makes, with the settings the generated
environment gives it:

  plugin_daemon: PostgreSQL with DB_* (creating DB_DATABASE when missing,
      as the daemon does) and Redis with REDIS_*.
  web, sandbox: their ports; the sandbox's own traffic leaves through the
      HTTP proxy its environment names (probed with curl inside it).
  llm (argv: llm PORT [CERT KEY]): an OpenAI-compatible endpoint.
      POST /v1/chat/completions answers "[stub-llm] you said: <the last user
      message>", blocking or streamed (server-sent events, three chunks
      STREAM_PAUSE seconds apart); POST /v1/embeddings gives deterministic
      vectors of EMBEDDING_DIMENSIONS (hashed words, so a query sharing words
      with a text lies near it); GET /v1/models lists both models. A GET of
      any path answers with its name, as the other stand-ins do.
  outside, sshd (argv: role PORT): listeners that name themselves.

A stand-in that cannot make its connections exits non-zero, so the
container restarts and the rehearsal sees it. Nothing here is Dify's code.
"""

import hashlib
import json
import math
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1] if len(sys.argv) > 1 else ""

STATE = {"ready": False, "checks": {}}
ACKS = {}
ACKS_LOCK = threading.Lock()

# The LLM stub's models.
LLM_MODEL = "stub-llm"
EMBEDDING_MODEL = "stub-embedding"
EMBEDDING_DIMENSIONS = 64
STREAM_PAUSE = 0.3
# Bodies larger than this are counted, not kept (the upload probes).
KEEP_BODY = 8 << 20


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


def words(text):
    return re.findall(r"\w+", text.lower())


def token_count(text):
    return max(1, len(words(text)))


# --- the LLM stub: an OpenAI-compatible endpoint ---------------------------


def stub_answer(prompt):
    """The stub's answer to a prompt, in the three pieces it streams."""
    return ["[stub-llm] ", "you said: ", prompt]


def stub_embedding(text):
    """A unit vector from the hashes of the text's words (and a constant
    component, so no vector is zero and none is opposite another)."""
    v = [0.0] * EMBEDDING_DIMENSIONS
    v[0] = 1.0
    for word in words(text):
        h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
        v[1 + h % (EMBEDDING_DIMENSIONS - 1)] += 1.0
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def message_text(content):
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def llm_route(h, path, body):
    """The LLM stub's OpenAI API; False for a path it leaves to the default."""
    if h.command == "GET" and path == "/v1/models":
        h.reply(200, {
            "service": "llm",
            "object": "list",
            "data": [
                {"id": LLM_MODEL, "object": "model", "created": 0, "owned_by": "rehearsal"},
                {"id": EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "rehearsal"},
            ],
        })
        return True
    if h.command != "POST" or path not in ("/v1/chat/completions", "/v1/embeddings"):
        return False
    try:
        request = json.loads(body or b"{}")
    except ValueError as err:
        h.reply(400, {"service": "llm", "error": {"message": f"invalid JSON: {err}"}})
        return True
    if path == "/v1/embeddings":
        texts = request.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            h.reply(400, {"service": "llm", "error": {"message": "input must be a string or a list of strings"}})
            return True
        tokens = sum(token_count(t) for t in texts)
        h.reply(200, {
            "service": "llm",
            "object": "list",
            "model": request.get("model", EMBEDDING_MODEL),
            "data": [
                {"object": "embedding", "index": i, "embedding": stub_embedding(t)}
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })
        return True
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        h.reply(400, {"service": "llm", "error": {"message": "messages must be a non-empty list"}})
        return True
    prompt = ""
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "user":
            prompt = message_text(m.get("content"))
    pieces = stub_answer(prompt)
    prompt_tokens = sum(token_count(message_text(m.get("content"))) for m in messages if isinstance(m, dict))
    completion_tokens = token_count("".join(pieces))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    ident = f"chatcmpl-stub-{uuid.uuid4().hex[:12]}"
    model = request.get("model", LLM_MODEL)
    created = int(time.time())
    if not request.get("stream"):
        h.reply(200, {
            "service": "llm",
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "".join(pieces)},
                "finish_reason": "stop",
            }],
            "usage": usage,
        })
        return True

    def chunk(delta, finish=None, with_usage=False):
        c = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if with_usage:
            c["usage"] = usage
        h.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
        h.wfile.flush()

    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Cache-Control", "no-cache")
    h.send_header("Connection", "close")
    h.end_headers()
    chunk({"role": "assistant", "content": ""})
    for n, piece in enumerate(pieces):
        if n:
            time.sleep(STREAM_PAUSE)
        chunk({"content": piece})
    chunk({}, finish="stop", with_usage=True)
    h.wfile.write(b"data: [DONE]\n\n")
    h.wfile.flush()
    h.close_connection = True
    return True


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

    def read_body(self):
        """The request's body (None when too large to keep) and its size."""
        parts, received = [], 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            reader = self.read_chunked()
        else:
            reader = self.read_length(int(self.headers.get("Content-Length") or 0))
        for chunk in reader:
            received += len(chunk)
            if received <= KEEP_BODY:
                parts.append(chunk)
        return (b"".join(parts) if received <= KEEP_BODY else None), received

    def read_length(self, length):
        received = 0
        while received < length:
            chunk = self.rfile.read(min(1 << 20, length - received))
            if not chunk:
                return
            received += len(chunk)
            yield chunk

    def read_chunked(self):
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def answer(self):
        url = urllib.parse.urlsplit(self.path)
        body = {"service": ROLE, "method": self.command, "path": url.path}
        data, received = self.read_body()
        if ROLE == "llm":
            log(f"{self.command} {url.path}")
        if url.path in ("/health", "/health/check"):
            status = 200 if STATE["ready"] else 503
            return self.reply(status, {**body, "checks": STATE["checks"]})
        if ROLE == "llm" and llm_route(self, url.path, data):
            return None
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
    if ROLE == "plugin_daemon":
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
        raise SystemExit(f"standin: unknown role {ROLE!r} (plugin_daemon, web, sandbox, llm, outside, sshd)")


if __name__ == "__main__":
    main()
