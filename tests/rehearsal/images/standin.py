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
      as the daemon does) and Redis with REDIS_*. It speaks the part of the
      daemon's inner API (/plugin/{tenant}/..., X-Api-Key = SERVER_KEY) that
      Dify's api needs to configure and use one model provider: the one of
      the langgenius/openai_api_compatible plugin, with an LLM and a text
      embedding model (customizable models: credentials endpoint_url, api_key
      optional, ...). Invocations do what that plugin does: they call the
      OpenAI-compatible endpoint the credentials name (POST
      {endpoint_url}/chat/completions, /embeddings) directly, trusting the CA
      file REHEARSAL_CA_FILE names when set (else the system's), and answer
      in the daemon's chunk format. An inner API path it does not implement
      gets an error naming the path.
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
import http.client
import json
import math
import os
import re
import ssl
import sys
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1] if len(sys.argv) > 1 else ""

STATE = {"ready": False, "checks": {}}

# The LLM stub's models, and the one provider the plugin daemon stand-in
# declares for them.
LLM_MODEL = "stub-llm"
EMBEDDING_MODEL = "stub-embedding"
EMBEDDING_DIMENSIONS = 64
STREAM_PAUSE = 0.3
# Bodies larger than this are read and dropped, not kept.
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
        h.event(json.dumps(c))

    h.start_events()
    chunk({"role": "assistant", "content": ""})
    for n, piece in enumerate(pieces):
        if n:
            time.sleep(STREAM_PAUSE)
        chunk({"content": piece})
    chunk({}, finish="stop", with_usage=True)
    h.event("[DONE]")
    return True


# --- the plugin daemon's inner API ------------------------------------------

PLUGIN_ID = "langgenius/openai_api_compatible"
PROVIDER = "openai_api_compatible"
# The daemon names an installed package by id, version and checksum.
PLUGIN_UNIQUE_IDENTIFIER = f"{PLUGIN_ID}:0.0.64@" + hashlib.sha256(b"dify-cfg rehearsal stand-in").hexdigest()
INSTALLED_AT = "2026-01-01T00:00:00Z"


def i18n(en, zh=None):
    return {"en_US": en, "zh_Hans": zh or en}


def show_on(model_type):
    return [{"variable": "__model_type", "value": model_type}]


# Modelled on the plugin's provider/openai_api_compatible.yaml, narrowed to
# the LLM and text-embedding models and the credentials they use here.
PROVIDER_DECLARATION = {
    "provider": PROVIDER,
    "label": i18n("OpenAI-API-compatible"),
    "description": i18n("Model providers compatible with OpenAI's API standard (rehearsal stand-in)."),
    "icon_small": i18n("icon.svg"),
    "supported_model_types": ["llm", "text-embedding"],
    "configurate_methods": ["customizable-model"],
    "models": [],
    "position": {},
    "model_credential_schema": {
        "model": {"label": i18n("Model Name"), "placeholder": i18n("Enter full model name")},
        "credential_form_schemas": [
            {"variable": "display_name", "label": i18n("Model display name"), "type": "text-input", "required": False},
            {"variable": "api_key", "label": i18n("API Key"), "type": "secret-input", "required": False},
            {"variable": "endpoint_url", "label": i18n("API Base URL"), "type": "text-input", "required": True,
             "placeholder": i18n("Base URL, e.g. https://api.openai.com/v1")},
            {"variable": "endpoint_model_name", "label": i18n("model name for API endpoint"),
             "type": "text-input", "required": False},
            {"variable": "mode", "label": i18n("Completion mode"), "type": "select", "required": False,
             "default": "chat", "show_on": show_on("llm"),
             "options": [{"value": "chat", "label": i18n("Chat")}]},
            {"variable": "context_size", "label": i18n("Model context size"), "type": "text-input",
             "required": True, "default": "4096", "show_on": show_on("llm")},
            {"variable": "max_tokens_to_sample", "label": i18n("Upper bound for max tokens"),
             "type": "text-input", "required": False, "default": "4096", "show_on": show_on("llm")},
            {"variable": "context_size", "label": i18n("Model context size"), "type": "text-input",
             "required": True, "default": "4096", "show_on": show_on("text-embedding")},
            {"variable": "max_chunks", "label": i18n("Model max chunks per batch"), "type": "text-input",
             "required": True, "default": "1", "show_on": show_on("text-embedding")},
        ],
    },
}


def model_schema(model, model_type, credentials):
    """What the plugin's get_customizable_model_schema makes of a model."""
    label = credentials.get("display_name") or model
    pricing = {"input": "0", "output": "0", "unit": "0.000001", "currency": "USD"}
    if model_type == "llm":
        max_tokens = int(credentials.get("max_tokens_to_sample") or 4096)
        return {
            "model": model,
            "label": i18n(label),
            "model_type": "llm",
            "features": [],
            "fetch_from": "customizable-model",
            "model_properties": {
                "mode": credentials.get("mode") or "chat",
                "context_size": int(credentials.get("context_size") or 4096),
            },
            "parameter_rules": [
                {"name": "temperature", "use_template": "temperature", "label": i18n("Temperature"),
                 "type": "float", "default": 0.7, "min": 0, "max": 2, "precision": 2},
                {"name": "top_p", "use_template": "top_p", "label": i18n("Top P"),
                 "type": "float", "default": 1, "min": 0, "max": 1, "precision": 2},
                {"name": "max_tokens", "use_template": "max_tokens", "label": i18n("Max Tokens"),
                 "type": "int", "default": 512, "min": 1, "max": max_tokens},
            ],
            "pricing": pricing,
        }
    if model_type == "text-embedding":
        return {
            "model": model,
            "label": i18n(label),
            "model_type": "text-embedding",
            "fetch_from": "customizable-model",
            "model_properties": {
                "context_size": int(credentials.get("context_size") or 4096),
                "max_chunks": int(credentials.get("max_chunks") or 1),
            },
            "parameter_rules": [],
            "pricing": {"input": "0", "unit": "0.000001", "currency": "USD"},
        }
    return None


class NotImplementedAction(Exception):
    """A dispatch action the stand-in does not implement."""


class PluginError(Exception):
    """An error the plugin raises, as the daemon passes it on: error_type
    is one of graphon's invoke or validation errors."""

    def __init__(self, error_type, message):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def endpoint_call(credentials, path, payload, stream=False):
    """POST to the OpenAI-compatible endpoint the credentials name, as the
    plugin does: directly (the daemon's environment names no proxy),
    trusting REHEARSAL_CA_FILE's CA when set."""
    base = (credentials.get("endpoint_url") or "").rstrip("/")
    url = urllib.parse.urlsplit(f"{base}/{path}")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise PluginError("CredentialsValidateFailedError", f"invalid endpoint_url: {base!r}")
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    if credentials.get("api_key"):
        headers["Authorization"] = f"Bearer {credentials['api_key']}"
    if url.scheme == "https":
        cafile = os.environ.get("REHEARSAL_CA_FILE") or None
        if cafile and not os.path.exists(cafile):
            raise PluginError("InvokeConnectionError", f"REHEARSAL_CA_FILE {cafile} does not exist")
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=60, context=ctx)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
    target = url.path + (f"?{url.query}" if url.query else "")
    try:
        conn.request("POST", target, body=json.dumps(payload), headers=headers)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as err:
        conn.close()
        raise PluginError("InvokeConnectionError", f"{base}/{path}: {err}") from err
    if resp.status != 200:
        text = resp.read(2000).decode(errors="replace")
        conn.close()
        if resp.status in (401, 403):
            kind = "InvokeAuthorizationError"
        elif resp.status == 429:
            kind = "InvokeRateLimitError"
        elif resp.status >= 500:
            kind = "InvokeServerUnavailableError"
        else:
            kind = "InvokeBadRequestError"
        raise PluginError(kind, f"{base}/{path}: HTTP {resp.status}: {text}")
    if stream:
        return conn, resp
    try:
        return json.loads(resp.read())
    except ValueError as err:
        raise PluginError("InvokeServerUnavailableError", f"{base}/{path}: not JSON: {err}") from err
    finally:
        conn.close()


def openai_messages(prompt_messages):
    out = []
    for m in prompt_messages or []:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("data", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        out.append({"role": m.get("role", "user"), "content": content or ""})
    return out


def llm_usage(usage, latency):
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "prompt_unit_price": "0",
        "prompt_price_unit": "0",
        "prompt_price": "0",
        "completion_tokens": completion,
        "completion_unit_price": "0",
        "completion_price_unit": "0",
        "completion_price": "0",
        "total_tokens": prompt + completion,
        "total_price": "0",
        "currency": "USD",
        "latency": latency,
    }


def llm_chunk(model, index, text, usage=None, finish=None):
    """An LLMResultChunk (graphon model_runtime/entities/llm_entities.py)."""
    return {
        "model": model,
        "prompt_messages": [],
        "system_fingerprint": None,
        "delta": {
            "index": index,
            "message": {"role": "assistant", "content": text, "name": None, "tool_calls": []},
            "usage": usage,
            "finish_reason": finish,
        },
    }


def invoke_llm(data):
    """dispatch/llm/invoke: the plugin's chat completion, chunk by chunk."""
    credentials = data.get("credentials") or {}
    model = data.get("model") or LLM_MODEL
    started = time.monotonic()
    params = dict(data.get("model_parameters") or {})
    payload = {
        "model": credentials.get("endpoint_model_name") or model,
        "messages": openai_messages(data.get("prompt_messages")),
        "stream": bool(data.get("stream", True)),
    }
    for key in ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty"):
        if key in params:
            payload[key] = params[key]
    if data.get("stop"):
        payload["stop"] = data["stop"]
    if not payload["stream"]:
        answer = endpoint_call(credentials, "chat/completions", payload)
        choice = (answer.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") or ""
        usage = llm_usage(answer.get("usage") or {}, time.monotonic() - started)
        yield llm_chunk(model, 0, text, usage, choice.get("finish_reason") or "stop")
        return
    payload["stream_options"] = {"include_usage": True}
    conn, resp = endpoint_call(credentials, "chat/completions", payload, stream=True)
    index, usage, finish = 0, {}, "stop"
    try:
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().strip()
            if not line.startswith("data:"):
                continue
            line = line[5:].strip()
            if line == "[DONE]":
                break
            event = json.loads(line)
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                finish = choice.get("finish_reason") or finish
                if text:
                    yield llm_chunk(model, index, text)
                    index += 1
    finally:
        conn.close()
    yield llm_chunk(model, index, "", llm_usage(usage, time.monotonic() - started), finish)


def invoke_embedding(data):
    credentials = data.get("credentials") or {}
    model = data.get("model") or EMBEDDING_MODEL
    texts = list(data.get("texts") or [])
    started = time.monotonic()
    batch = max(1, int(credentials.get("max_chunks") or 1))
    embeddings, tokens = [], 0
    for i in range(0, len(texts), batch):
        answer = endpoint_call(credentials, "embeddings", {
            "model": credentials.get("endpoint_model_name") or model,
            "input": texts[i:i + batch],
        })
        embeddings.extend(d["embedding"] for d in sorted(answer.get("data") or [], key=lambda d: d["index"]))
        usage = answer.get("usage") or {}
        tokens += int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    return {
        "model": model,
        "embeddings": embeddings,
        "usage": {
            "tokens": tokens,
            "total_tokens": tokens,
            "unit_price": "0",
            "price_unit": "0",
            "total_price": "0",
            "currency": "USD",
            "latency": time.monotonic() - started,
        },
    }


def validate_model(data):
    """dispatch/model/validate_model_credentials: what the plugin does, a
    small request to the endpoint."""
    credentials = data.get("credentials") or {}
    model_type = data.get("model_type")
    if not credentials.get("endpoint_url"):
        raise PluginError("CredentialsValidateFailedError", "endpoint_url is required")
    try:
        if model_type == "llm":
            list(invoke_llm({**data, "prompt_messages": [{"role": "user", "content": "ping"}],
                             "model_parameters": {"max_tokens": 5}, "stream": False}))
        elif model_type == "text-embedding":
            invoke_embedding({**data, "texts": ["ping"]})
        else:
            raise PluginError("CredentialsValidateFailedError", f"model type {model_type} is not supported")
    except PluginError as err:
        raise PluginError("CredentialsValidateFailedError", err.message) from err
    return {"result": True, "credentials": credentials}


def provider_entry(tenant):
    """A PluginModelProviderEntity (core/plugin/entities/plugin_daemon.py)."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{PLUGIN_ID}")),
        "created_at": INSTALLED_AT,
        "updated_at": INSTALLED_AT,
        "provider": PROVIDER,
        "tenant_id": tenant,
        "plugin_unique_identifier": PLUGIN_UNIQUE_IDENTIFIER,
        "plugin_id": PLUGIN_ID,
        "declaration": PROVIDER_DECLARATION,
    }


def dispatch_stream(action, data):
    """The dispatch/* answers, each a stream of `data:` lines."""
    if action == "model/schema":
        schema = model_schema(data.get("model") or "", data.get("model_type"), data.get("credentials") or {})
        if schema is None:
            raise PluginError("InvokeBadRequestError", f"model type {data.get('model_type')} is not supported")
        yield {"model_schema": schema}
    elif action == "model/validate_model_credentials":
        yield validate_model(data)
    elif action == "model/validate_provider_credentials":
        # A customizable-model provider has no provider credentials.
        yield {"result": True, "credentials": data.get("credentials") or {}}
    elif action == "llm/invoke":
        yield from invoke_llm(data)
    elif action == "llm/num_tokens":
        texts = [m.get("content") for m in openai_messages(data.get("prompt_messages"))]
        yield {"num_tokens": sum(token_count(t) for t in texts)}
    elif action == "text_embedding/invoke":
        yield invoke_embedding(data)
    elif action == "text_embedding/num_tokens":
        yield {"num_tokens": [token_count(t) for t in data.get("texts") or []]}
    else:
        raise NotImplementedAction(action)


def daemon_route(h, path, body):
    """The daemon's inner API; False for a path outside it."""
    m = re.fullmatch(r"/plugin/([^/]+)/(.+)", path)
    if not m:
        return False
    tenant, rest = m.groups()
    if h.headers.get("X-Api-Key") != os.environ.get("SERVER_KEY"):
        h.reply(401, {"service": ROLE, "code": -401, "message": "standin plugin_daemon: invalid X-Api-Key",
                      "data": None})
        return True
    if h.command == "GET" and rest == "management/models":
        h.reply(200, {"service": ROLE, "code": 0, "message": "", "data": [provider_entry(tenant)]})
        return True
    if h.command == "POST" and rest.startswith("dispatch/"):
        action = rest[len("dispatch/"):]
        try:
            data = json.loads(body or b"{}").get("data") or {}
        except (ValueError, AttributeError) as err:
            h.reply(400, {"service": ROLE, "code": -400, "message": f"invalid request body: {err}", "data": None})
            return True
        lines = dispatch_stream(action, data)
        try:
            first = next(lines)
        except NotImplementedAction:
            return not_implemented(h, path)
        except StopIteration:
            first = None
        except PluginError as err:
            return stream_reply(h, [], err)
        except Exception as err:  # noqa: BLE001 - passed on as the plugin's error
            return stream_reply(h, [], PluginError("InvokeError", f"{type(err).__name__}: {err}"))
        return stream_reply(h, [first] if first is not None else [], None, lines)
    return not_implemented(h, path)


def not_implemented(h, path):
    h.reply(404, {
        "service": ROLE,
        "code": -404,
        "message": f"standin plugin_daemon does not implement {h.command} {path}",
        "data": None,
    })
    return True


def plugin_error_line(err):
    # core/plugin/impl/base.py: code -500, the message a PluginDaemonError
    # whose message is the plugin's error (error_type + message) as JSON.
    inner = json.dumps({"error_type": err.error_type, "message": err.message})
    return {"code": -500, "message": json.dumps({"error_type": "PluginInvokeError", "message": inner}), "data": None}


def stream_reply(h, head, error, rest=()):
    h.start_events()

    def send(obj):
        h.event(json.dumps(obj))

    try:
        for data in head:
            send({"code": 0, "message": "", "data": data})
        if error is None:
            for data in rest:
                send({"code": 0, "message": "", "data": data})
        else:
            raise error
    except Exception as err:  # noqa: BLE001 - passed on as the plugin's error
        if not isinstance(err, PluginError):
            err = PluginError("InvokeError", f"{type(err).__name__}: {err}")
        log(f"{h.path}: {err.error_type}: {err.message}")
        send(plugin_error_line(err))
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

    def start_events(self):
        """Answer with server-sent events; the connection ends with them."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def event(self, data):
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def read_body(self):
        """The request's body (None when too large to keep)."""
        parts, received = [], 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            reader = self.read_chunked()
        else:
            reader = self.read_length(int(self.headers.get("Content-Length") or 0))
        for chunk in reader:
            received += len(chunk)
            if received <= KEEP_BODY:
                parts.append(chunk)
        return b"".join(parts) if received <= KEEP_BODY else None

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
        data = self.read_body()
        if ROLE in ("llm", "plugin_daemon"):
            log(f"{self.command} {url.path}")
        if url.path in ("/health", "/health/check"):
            status = 200 if STATE["ready"] else 503
            return self.reply(status, {**body, "checks": STATE["checks"]})
        if ROLE == "llm" and llm_route(self, url.path, data):
            return None
        if ROLE == "plugin_daemon" and daemon_route(self, url.path, data):
            return None
        return self.reply(200, body)

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
