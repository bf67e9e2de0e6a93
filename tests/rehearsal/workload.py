#!/usr/bin/python3
"""A smoke workload against a site's real Dify api, through its nginx.

    workload.py console    --base URL [--host NAME] [--cacert FILE] --state PATH
                           [--llm-endpoint URL] [--llm-api-key KEY]
    workload.py completion --base URL [--host NAME] [--cacert FILE] --state PATH
    workload.py kept       --base URL [--host NAME] [--cacert FILE] --state PATH

--base is where the site's nginx is reached (http://10.20.1.10,
https://10.20.1.10); --host is the site's name, sent as the Host header and,
over https, the name the certificate must carry (as curl's --resolve does);
--cacert is the CA that signed it.

console (from the admin network): the first-run setup of the admin account
(or nothing when the site is set up already), the console login (the
password base64-encoded as the console's web client sends it; the session
is the access_token and csrf_token cookies, the CSRF token echoed in
X-CSRF-Token), the OpenAI-compatible model provider with an LLM and a
text-embedding model whose endpoint is the rehearsal's LLM stub, a
`completion` app on that LLM and an API key for it, a knowledge base indexed
with high quality (the stub's embeddings) from an uploaded text file, a wait
for the worker to report the document indexed, and a hit test that must
return the document's segment (so pgvector holds its embedding). It writes
what the public part needs to the state file.

kept (from the admin network, after an upgrade or a restore): what console
wrote is still there and served: the console login, the app with its model,
the uploaded file's text (read back from the api's storage), the document
indexed, and the hit test finding its segment again.

completion (from the LAN): POST /v1/completion-messages with the app's key,
blocking, then streaming; the answer must be the stub's echo of the prompt,
and the streamed events must arrive one by one (the stub sends its three
pieces STREAM_PAUSE apart: the first must arrive well before the last).

One JSON line a step: {"step", "ok", "status", "detail", "seconds"}. The
first failed step ends the run with exit status 1 and the response body in
its detail. Standard library only.
"""

import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import sys
import time
import urllib.parse
import uuid

PROVIDER = "langgenius/openai_api_compatible/openai_api_compatible"
LLM_MODEL = "stub-llm"
EMBEDDING_MODEL = "stub-embedding"
STUB_PREFIX = "[stub-llm] you said: "
STREAM_PAUSE = 0.3
ADMIN = {"email": "admin@clinics.example.org", "name": "Rehearsal Admin", "password": "Rehearsal-2024"}
DOCUMENT = (
    "Ward seven handbook, edition {run}.\n\n"
    "The night nurse on ward seven is Ottoline Brackenbury. "
    "Visiting hours on ward seven end at eight in the evening.\n"
)
MARKER = "Ottoline Brackenbury"
QUERY = "who is the night nurse on ward seven"
RETRIEVAL = {
    "search_method": "semantic_search",
    "reranking_enable": False,
    "reranking_model": {"reranking_provider_name": "", "reranking_model_name": ""},
    "top_k": 3,
    "score_threshold_enabled": False,
    "score_threshold": None,
}


class StepFailed(Exception):
    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def text(self, limit=4000):
        return self.body.decode(errors="replace")[:limit]


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """https to an address, the certificate checked against a name."""

    def __init__(self, address, port, name, **kwargs):
        super().__init__(name, port, **kwargs)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Client:
    def __init__(self, base, host=None, cacert=None, timeout=60):
        self.base = urllib.parse.urlsplit(base.rstrip("/"))
        if self.base.scheme not in ("http", "https") or not self.base.hostname:
            raise SystemExit(f"workload: --base must be an http or https URL, not {base!r}")
        self.host = host
        self.cacert = cacert
        self.timeout = timeout
        self.cookies = {}

    def connection(self):
        address = self.base.hostname
        if self.base.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.cacert)
            return PinnedHTTPSConnection(address, self.base.port or 443, self.host or address,
                                         context=ctx, timeout=self.timeout)
        return http.client.HTTPConnection(address, self.base.port or 80, timeout=self.timeout)

    def csrf(self):
        return self.cookies.get("csrf_token") or self.cookies.get("__Host-csrf_token")

    def headers(self, extra):
        h = {"Accept": "application/json"}
        if self.host:
            h["Host"] = self.host
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            if self.csrf():
                h["X-CSRF-Token"] = self.csrf()
        h.update(extra or {})
        return h

    def keep_cookies(self, resp):
        for line in resp.headers.get_all("Set-Cookie") or []:
            name, _, value = line.split(";", 1)[0].partition("=")
            if value:
                self.cookies[name.strip()] = value.strip()
            else:
                self.cookies.pop(name.strip(), None)

    def send(self, method, path, body=None, headers=None):
        conn = self.connection()
        conn.request(method, self.base.path + path, body=body, headers=self.headers(headers))
        return conn, conn.getresponse()

    def request(self, method, path, payload=None, headers=None, raw=None):
        extra = dict(headers or {})
        body = raw
        if payload is not None:
            body = json.dumps(payload).encode()
            extra["Content-Type"] = "application/json"
        conn, resp = self.send(method, path, body, extra)
        try:
            data = resp.read()
        finally:
            conn.close()
        self.keep_cookies(resp)
        return Response(resp.status, resp.headers, data)

    def events(self, path, payload, headers=None):
        """POST, then yield (seconds since sent, event) per server-sent event."""
        extra = {"Content-Type": "application/json", "Accept": "text/event-stream", **(headers or {})}
        started = time.monotonic()
        conn, resp = self.send("POST", path, json.dumps(payload).encode(), extra)
        try:
            if resp.status != 200:
                raise StepFailed(resp.status, {"body": resp.read(4000).decode(errors="replace")})
            while True:
                line = resp.readline()
                if not line:
                    return
                line = line.decode().strip()
                if line.startswith("data:"):
                    yield time.monotonic() - started, json.loads(line[5:].strip())
        finally:
            conn.close()


def expect(resp, *statuses):
    if resp.status not in statuses:
        raise StepFailed(resp.status, {"expected": list(statuses), "body": resp.json() or resp.text()})
    return resp.json()


def run_steps(steps):
    for name, fn in steps:
        started = time.monotonic()
        try:
            status, detail = fn()
            ok = True
        except StepFailed as err:
            status, detail, ok = err.status, err.detail, False
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, IndexError) as err:
            status, detail, ok = None, {"error": f"{type(err).__name__}: {err}"}, False
        line = {"step": name, "ok": ok, "status": status, "detail": detail,
                "seconds": round(time.monotonic() - started, 2)}
        print(json.dumps(line), flush=True)
        if not ok:
            sys.exit(1)


def save_state(path, state):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def login(c):
    password = base64.b64encode(ADMIN["password"].encode()).decode()
    resp = c.request("POST", "/console/api/login",
                     {"email": ADMIN["email"], "password": password, "remember_me": True})
    body = expect(resp, 200)
    if body.get("result") != "success" or not c.csrf():
        raise StepFailed(resp.status, {"body": body, "cookies": sorted(c.cookies)})
    profile = expect(c.request("GET", "/console/api/account/profile"), 200)
    return resp.status, {"result": body["result"], "cookies": sorted(c.cookies), "account": profile.get("email")}


def hit_testing(c, state):
    resp = c.request("POST", f"/console/api/datasets/{state['dataset_id']}/hit-testing",
                     {"query": QUERY, "retrieval_model": RETRIEVAL})
    body = expect(resp, 200)
    records = body.get("records") or []
    hits = [r for r in records if MARKER in ((r.get("segment") or {}).get("content") or "")]
    if not hits:
        raise StepFailed(resp.status, {"query": QUERY, "marker": MARKER, "body": body})
    best = hits[0]
    return resp.status, {"query": QUERY, "records": len(records), "score": best.get("score"),
                         "document_id": (best.get("segment") or {}).get("document_id"),
                         "segment": best["segment"]["content"][:120]}


def console(args):
    c = Client(args.base, args.host, args.cacert)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    state = {"base": args.base, "host": args.host, "run": run_id}
    llm_credentials = {
        "endpoint_url": args.llm_endpoint,
        "mode": "chat",
        "context_size": "4096",
        "max_tokens_to_sample": "4096",
    }
    embedding_credentials = {"endpoint_url": args.llm_endpoint, "context_size": "4096", "max_chunks": "4"}
    if args.llm_api_key:
        llm_credentials["api_key"] = embedding_credentials["api_key"] = args.llm_api_key

    def setup():
        status = expect(c.request("GET", "/console/api/setup"), 200)
        if status.get("step") == "finished":
            return 200, {"setup": "already finished", "setup_at": status.get("setup_at")}
        body = expect(c.request("POST", "/console/api/setup", ADMIN), 201)
        return 201, {"result": body.get("result"), "email": ADMIN["email"]}

    def model_provider():
        path = f"/console/api/workspaces/current/model-providers/{PROVIDER}/models/credentials"
        for model, model_type, credentials in (
            (LLM_MODEL, "llm", llm_credentials),
            (EMBEDDING_MODEL, "text-embedding", embedding_credentials),
        ):
            name = f"rehearsal {run_id}"[:30]
            expect(c.request("POST", path, {"model": model, "model_type": model_type, "name": name,
                                            "credentials": credentials}), 201)
        expect(c.request("POST", "/console/api/workspaces/current/default-model", {"model_settings": [
            {"model_type": "llm", "provider": PROVIDER, "model": LLM_MODEL},
            {"model_type": "text-embedding", "provider": PROVIDER, "model": EMBEDDING_MODEL},
        ]}), 200)
        found = {}
        for model_type in ("llm", "text-embedding"):
            resp = c.request("GET", f"/console/api/workspaces/current/models/model-types/{model_type}")
            for provider in expect(resp, 200).get("data") or []:
                if provider.get("provider") == PROVIDER:
                    for m in provider.get("models") or []:
                        found[m.get("model")] = m.get("status")
        if found.get(LLM_MODEL) != "active" or found.get(EMBEDDING_MODEL) != "active":
            raise StepFailed(200, {"models": found, "expected": "both active"})
        return 201, {"provider": PROVIDER, "models": found, "endpoint": args.llm_endpoint}

    def app():
        body = expect(c.request("POST", "/console/api/apps", {
            "name": f"rehearsal completion {run_id}", "mode": "completion",
            "icon_type": "emoji", "icon": "🩺", "icon_background": "#FFEAD5",
        }), 201)
        state["app_id"] = app_id = body["id"]
        expect(c.request("POST", f"/console/api/apps/{app_id}/model-config", {
            "model": {"provider": PROVIDER, "name": LLM_MODEL, "mode": "chat", "completion_params": {}},
            "user_input_form": [{"paragraph": {"label": "Query", "variable": "query", "required": True,
                                               "default": ""}}],
            "pre_prompt": "{{query}}",
            "prompt_type": "simple",
            "dataset_configs": {"retrieval_model": "multiple", "datasets": {"datasets": []}},
            "more_like_this": {"enabled": False},
            "opening_statement": "",
            "suggested_questions": [],
        }), 200)
        detail = expect(c.request("GET", f"/console/api/apps/{app_id}"), 200)
        model = ((detail.get("model_config") or {}).get("model") or {})
        if model.get("provider") != PROVIDER or model.get("name") != LLM_MODEL:
            raise StepFailed(200, {"model_config": detail.get("model_config")})
        return 201, {"app_id": app_id, "mode": detail.get("mode"), "model": model}

    def app_key():
        body = expect(c.request("POST", f"/console/api/apps/{state['app_id']}/api-keys"), 201)
        token = body.get("token") or ""
        if not token.startswith("app-"):
            raise StepFailed(201, {"body": body})
        state["app_key"] = token
        save_state(args.state, state)
        return 201, {"key": token[:8] + "...", "state": args.state}

    def upload():
        boundary = uuid.uuid4().hex
        raw = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="ward-seven.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
            f"{DOCUMENT.format(run=run_id)}\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="source"\r\n\r\n'
            "datasets\r\n"
            f"--{boundary}--\r\n"
        ).encode()
        resp = c.request("POST", "/console/api/files/upload", raw=raw,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        body = expect(resp, 201)
        state["file_id"] = body["id"]
        return resp.status, {"file_id": body["id"], "name": body.get("name"), "size": body.get("size")}

    def dataset():
        resp = c.request("POST", "/console/api/datasets/init", {
            "data_source": {"info_list": {"data_source_type": "upload_file",
                                          "file_info_list": {"file_ids": [state["file_id"]]}}},
            "indexing_technique": "high_quality",
            "process_rule": {"mode": "automatic"},
            "doc_form": "text_model",
            "doc_language": "English",
            "retrieval_model": RETRIEVAL,
            "embedding_model": EMBEDDING_MODEL,
            "embedding_model_provider": PROVIDER,
        })
        body = expect(resp, 200, 201)
        state["dataset_id"] = body["dataset"]["id"]
        state["document_id"] = body["documents"][0]["id"]
        save_state(args.state, state)
        detail = expect(c.request("GET", f"/console/api/datasets/{state['dataset_id']}"), 200)
        if (detail.get("indexing_technique"), detail.get("embedding_model_provider"),
                detail.get("embedding_model")) != ("high_quality", PROVIDER, EMBEDDING_MODEL):
            raise StepFailed(200, {"dataset": detail})
        return resp.status, {
            "dataset_id": state["dataset_id"],
            "document_id": state["document_id"],
            "indexing_technique": detail["indexing_technique"],
            "embedding_model": detail["embedding_model"],
        }

    def indexing():
        path = f"/console/api/datasets/{state['dataset_id']}/documents/{state['document_id']}/indexing-status"
        deadline = time.monotonic() + args.index_timeout
        seen = []
        while True:
            resp = c.request("GET", path)
            body = expect(resp, 200)
            status = body.get("indexing_status")
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == "completed":
                return resp.status, {"indexing_status": status, "went_through": seen,
                                     "segments": f"{body.get('completed_segments')}/{body.get('total_segments')}"}
            if status in ("error", "paused", "stopped") or time.monotonic() > deadline:
                raise StepFailed(resp.status, {"went_through": seen, "body": body,
                                               "timeout": time.monotonic() > deadline})
            time.sleep(0.5)

    run_steps([
        ("setup", setup),
        ("login", lambda: login(c)),
        ("model_provider", model_provider),
        ("app", app),
        ("app_key", app_key),
        ("upload", upload),
        ("dataset", dataset),
        ("indexing", indexing),
        ("hit_testing", lambda: hit_testing(c, state)),
    ])


def kept(args):
    with open(args.state) as f:
        state = json.load(f)
    c = Client(args.base, args.host, args.cacert)

    def app():
        detail = expect(c.request("GET", f"/console/api/apps/{state['app_id']}"), 200)
        model = ((detail.get("model_config") or {}).get("model") or {})
        if model.get("provider") != PROVIDER or model.get("name") != LLM_MODEL:
            raise StepFailed(200, {"model_config": detail.get("model_config")})
        return 200, {"app_id": detail.get("id"), "name": detail.get("name"), "model": model.get("name")}

    def file():
        resp = c.request("GET", f"/console/api/files/{state['file_id']}/preview")
        body = expect(resp, 200)
        if MARKER not in (body.get("content") or ""):
            raise StepFailed(resp.status, {"marker": MARKER, "body": body})
        return resp.status, {"file_id": state["file_id"], "content": body["content"][:120]}

    def document():
        path = f"/console/api/datasets/{state['dataset_id']}/documents/{state['document_id']}/indexing-status"
        body = expect(c.request("GET", path), 200)
        if body.get("indexing_status") != "completed":
            raise StepFailed(200, {"body": body})
        return 200, {"indexing_status": body["indexing_status"],
                     "segments": f"{body.get('completed_segments')}/{body.get('total_segments')}"}

    run_steps([
        ("login", lambda: login(c)),
        ("app", app),
        ("file", file),
        ("document", document),
        ("hit_testing", lambda: hit_testing(c, state)),
    ])


def completion(args):
    with open(args.state) as f:
        state = json.load(f)
    c = Client(args.base, args.host, args.cacert)
    auth = {"Authorization": f"Bearer {state['app_key']}"}
    prompt = f"rehearsal ping {uuid.uuid4().hex[:8]}"
    # The stub echoes the user message it gets: the app's pre_prompt
    # ({{query}}) as Dify composes it, with a newline after it
    # (core/prompt/simple_prompt_transform.py).
    expected = STUB_PREFIX + prompt + "\n"

    def blocking():
        resp = c.request("POST", "/v1/completion-messages", {
            "inputs": {"query": prompt}, "response_mode": "blocking", "user": "rehearsal-lan",
        }, headers=auth)
        body = expect(resp, 200)
        if body.get("answer") != expected:
            raise StepFailed(resp.status, {"expected": expected, "body": body})
        return resp.status, {"answer": body["answer"], "message_id": body.get("message_id"),
                             "tokens": (body.get("metadata") or {}).get("usage", {}).get("total_tokens")}

    def streaming():
        pieces, kinds = [], []
        for at, event in c.events("/v1/completion-messages", {
            "inputs": {"query": prompt}, "response_mode": "streaming", "user": "rehearsal-lan",
        }, headers=auth):
            kinds.append(event.get("event"))
            if event.get("event") == "message" and event.get("answer"):
                pieces.append((round(at, 3), event["answer"]))
            if event.get("event") == "error":
                raise StepFailed(200, {"event": event})
        answer = "".join(p for _, p in pieces)
        spread = pieces[-1][0] - pieces[0][0] if pieces else 0
        detail = {"answer": answer, "pieces": pieces, "events": kinds, "first_to_last": round(spread, 3)}
        # Three pieces STREAM_PAUSE apart: a buffered stream brings them at once.
        if answer != expected or len(pieces) < 3 or spread < 1.3 * STREAM_PAUSE or "message_end" not in kinds:
            raise StepFailed(200, {"expected": expected, **detail})
        return 200, detail

    run_steps([("completion_blocking", blocking), ("completion_streaming", streaming)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["console", "kept", "completion"])
    parser.add_argument("--base", required=True, help="the site's nginx, e.g. http://10.20.1.10")
    parser.add_argument("--host", help="the site's name: the Host header and the certificate's name")
    parser.add_argument("--cacert", help="the CA file for https")
    parser.add_argument("--state", required=True, help="the JSON file console writes and completion reads")
    parser.add_argument("--llm-endpoint", default="https://10.0.0.40/v1",
                        help="the OpenAI-compatible endpoint the model provider is given")
    parser.add_argument("--llm-api-key", help="the endpoint's API key (optional)")
    parser.add_argument("--index-timeout", type=float, default=180, help="seconds to wait for indexing")
    args = parser.parse_args()
    {"console": console, "kept": kept, "completion": completion}[args.step](args)


if __name__ == "__main__":
    main()
