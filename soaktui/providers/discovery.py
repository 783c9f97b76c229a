"""Find the local LLM servers a run can soak, and what each says about its models.

Probes the default ports of LM Studio, Ollama, llama.cpp and vLLM plus every `--base-url`,
concurrently and with short timeouts, recognises each server's kind from its native endpoints and
reads their model metadata (parsing lives in native.py). A server that is down, hangs, or answers
HTML or garbage ends up in `unreachable` with a one-line reason; discovery itself never raises
for a bad server.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from soaktui.providers import native
from soaktui.providers.selection import KIND_LABELS, format_selection
from soaktui.providers.types import LLAMACPP, LMSTUDIO, OLLAMA, OPENAI, VLLM, ModelInfo, Provider, is_loopback

__all__ = [
    "DEFAULT_PORTS",
    "KIND_LABELS",
    "discover",
    "format_selection",
    "no_servers_message",
    "normalise_base_url",
]

# Where each server listens unless told otherwise, probed in this order. llama-server's default is
# 8080 (common/common.h `port`); 9931 is the default llama.cpp has announced for its server, so it
# is probed too (docs/servers.md).
DEFAULT_PORTS: tuple[tuple[str, int], ...] = (
    (LMSTUDIO, 1234),
    (OLLAMA, 11434),
    (LLAMACPP, 8080),
    (LLAMACPP, 9931),
    (VLLM, 8000),
)

MAX_BODY_BYTES = 8 * 1024 * 1024  # a model list bigger than this is not a model list
PER_MODEL_CONCURRENCY = 4  # /api/show or /props?model= requests in flight per server


def normalise_base_url(url: str) -> str:
    """The server root for a base URL: scheme added if missing, trailing "/" and "/v1" removed."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    text = text.rstrip("/")
    if text.lower().endswith("/v1"):
        text = text[:-3].rstrip("/")
    return text


def _host_port(root: str) -> tuple[str, int | None]:
    parts = urlsplit(root)
    host = parts.hostname or root
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return host, port


def _label(root: str) -> str:
    _, port = _host_port(root)
    kind = next((k for k, p in DEFAULT_PORTS if p == port), None)
    return f"{root} [{KIND_LABELS[kind]}]" if kind else root


def no_servers_message(probed: Sequence[str], unreachable: dict[str, str] | None = None) -> str:
    """One line for the CLI when nothing answered: where we looked, and what to do next.

    Reasons other than a plain refusal (HTML, timeouts, HTTP errors) are appended, since they
    usually mean the URL points at the wrong thing.
    """
    tried = ", ".join(_label(u) for u in probed) or "nothing"
    msg = f"no LLM server found (tried {tried}); start one, pass --base-url URL, or try --demo"
    odd = [f"{u}: {r}" for u, r in (unreachable or {}).items() if r != "connection refused"]
    if odd:
        msg += " [" + "; ".join(odd) + "]"
    return msg


# ---------------------------------------------------------------------------------------------
# One HTTP exchange, reduced to what discovery needs.


@dataclass
class _Answer:
    path: str
    status: int | None = None
    json: Any = None
    problem: str | None = None  # one line, when the answer is not usable JSON
    fatal: bool = False  # the server itself is unreachable (refused, timeout, not HTTP)

    @property
    def ok(self) -> bool:
        return self.problem is None


def connect_problem(exc: BaseException) -> str:
    """A short reason for a failed connection (refused, unresolvable host, ...); the telemetry
    readers of server metrics say it the same way discovery does."""
    cause: BaseException | None = exc
    for _ in range(8):  # the exception chain, bounded
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
        return "cannot resolve host"
    return f"cannot connect ({text.splitlines()[0][:120]})"


class _Probe:
    """GET/POST against one server root, with a whole-request deadline and a bounded body."""

    def __init__(self, client: httpx.AsyncClient, root: str, timeout_s: float) -> None:
        self.client = client
        self.root = root
        self.timeout_s = timeout_s

    async def get(self, path: str) -> _Answer:
        return await self._call("GET", path, None)

    async def post(self, path: str, payload: dict[str, Any]) -> _Answer:
        return await self._call("POST", path, payload)

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> _Answer:
        try:
            return await asyncio.wait_for(self._exchange(method, path, payload), self.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
            what = "no connection" if isinstance(exc, httpx.ConnectTimeout) else "no answer"
            return _Answer(path, problem=f"{what} within {self.timeout_s:g} s", fatal=True)
        except httpx.ConnectError as exc:
            return _Answer(path, problem=connect_problem(exc), fatal=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            text = (str(exc) or type(exc).__name__).splitlines()[0][:120]
            return _Answer(path, problem=f"no valid HTTP answer ({text})", fatal=True)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return _Answer(path, problem=f"invalid URL ({exc})", fatal=True)
        except httpx.HTTPError as exc:
            return _Answer(path, problem=f"{type(exc).__name__}: {exc}", fatal=True)
        except OSError as exc:
            return _Answer(path, problem=connect_problem(exc), fatal=True)

    async def _exchange(self, method: str, path: str, payload: dict[str, Any] | None) -> _Answer:
        url = self.root + path
        async with self.client.stream(method, url, json=payload) as resp:
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return _Answer(
                        path,
                        resp.status_code,
                        problem=f"answered over {MAX_BODY_BYTES // 2**20} MB on {path}",
                    )
        return _classify_body(path, resp.status_code, ctype, bytes(body))


def _classify_body(path: str, status: int, ctype: str, body: bytes) -> _Answer:
    head = body.lstrip()[:64].lower()
    if ctype == "text/html" or head.startswith((b"<!doctype", b"<html", b"<")):
        return _Answer(path, status, problem="answered HTML, not an OpenAI-compatible API")
    if not 200 <= status < 300:
        hint = " (wrong or missing --api-key?)" if status in (401, 403) else ""
        return _Answer(path, status, problem=f"answered HTTP {status} on {path}{hint}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        sample = body[:40].decode("utf-8", "replace").strip().replace("\n", " ")
        return _Answer(
            path, status, problem=f"answered non-JSON on {path} ({ctype or 'no content type'}: {sample!r})"
        )
    return _Answer(path, status, json=data)


# ---------------------------------------------------------------------------------------------
# Recognising a server and reading its models.


@dataclass
class _Found:
    kind: str
    models: list[ModelInfo]
    version: str | None
    native: dict[str, Any]


def _owners(items: list[dict]) -> set[str]:
    return {str(it.get("owned_by")).lower() for it in items if it.get("owned_by") is not None}


def _version(answer: _Answer | None) -> str | None:
    if answer is not None and answer.ok and isinstance(answer.json, dict):
        v = answer.json.get("version")
        return str(v) if v is not None else None
    return None


async def _probe_root(client: httpx.AsyncClient, root: str, timeout_s: float) -> _Found | str:
    """What one server is and serves, or a one-line reason it cannot be used.

    Models are parsed with an empty provider name; discover() names the provider once the kind is known.
    """
    name = ""
    probe = _Probe(client, root, timeout_s)
    first = await probe.get("/v1/models")
    if first.fatal:
        return str(first.problem)
    openai_items = native.openai_model_list(first.json) if first.ok else None
    owners = _owners(openai_items or [])
    if openai_items and (
        "llamacpp" in owners or any(isinstance(it.get("meta"), dict) for it in openai_items)
    ):
        return await _llamacpp(probe, openai_items, None, name, "/v1/models owned_by/meta")
    if openai_items and ("vllm" in owners or any("max_model_len" in it for it in openai_items)):
        version = await probe.get("/version")
        return _Found(
            VLLM, native.parse_vllm(openai_items, name), _version(version), {"detected_by": "/v1/models"}
        )

    lms1, lms0, tags, props = await asyncio.gather(
        probe.get("/api/v1/models"), probe.get("/api/v0/models"), probe.get("/api/tags"), probe.get("/props")
    )
    if props.ok and native.is_llamacpp_props(props.json) and openai_items is not None:
        return await _llamacpp(probe, openai_items, props, name, "/props")
    v1_items = native.lmstudio_v1_list(lms1.json) if lms1.ok else None
    v0_items = native.lmstudio_v0_list(lms0.json) if lms0.ok else None
    if v1_items is not None or v0_items is not None:
        if v1_items is not None:
            models, source = native.parse_lmstudio_v1(v1_items, name), "/api/v1/models"
        else:
            models, source = native.parse_lmstudio_v0(v0_items or [], name), "/api/v0/models"
        facts: dict[str, Any] = {"detected_by": source}
        unservable = _lmstudio_unservable(models, openai_items)
        if unservable:
            facts["unservable"] = unservable
        return _Found(LMSTUDIO, models, None, facts)
    tag_items = native.ollama_tags_list(tags.json) if tags.ok else None
    if tag_items is not None:
        return await _ollama(probe, tag_items, name)
    if openai_items is not None:
        facts = {"detected_by": "/v1/models"}
        if owners:
            facts["owned_by"] = sorted(owners)
        return _Found(OPENAI, native.parse_openai(openai_items, name), None, facts)
    if first.ok:
        return "answered JSON without a model list on /v1/models"
    return str(first.problem)


async def _llamacpp(
    probe: _Probe, items: list[dict], props: _Answer | None, name: str, detected_by: str
) -> _Found:
    if props is None:
        props = await probe.get("/props")
    props_json = props.json if props.ok and isinstance(props.json, dict) else None
    props_by_id: dict[str, Any] | None = None
    # Router mode (llama-server without -m; tools/server/server-models.cpp): /props answers
    # {"role": "router", ...} and each /v1/models entry carries a `status` object. Per-model facts
    # need /props?model=, even when the router serves a single model.
    router = (props_json or {}).get("role") == "router" or any(isinstance(it.get("status"), dict) for it in items)
    top = props_json
    if router:
        props_json = None  # the router's own /props is a placeholder (n_ctx 0, model_path "none")
    if router or len(items) > 1:
        # Per-model /props, only for loaded models and never loading one.
        gate = asyncio.Semaphore(PER_MODEL_CONCURRENCY)

        async def one(mid: str) -> tuple[str, Any]:
            async with gate:
                ans = await probe.get(f"/props?model={quote(mid, safe='')}&autoload=false")
            return mid, ans.json if ans.ok else None

        ids = [
            str(it["id"])
            for it in items
            if isinstance(it.get("id"), str) and native.llamacpp_state(it) in (None, "loaded")
        ]
        props_by_id = {k: v for k, v in await asyncio.gather(*(one(i) for i in ids)) if isinstance(v, dict)}
        if props_json is None and props_by_id:
            props_json = next(iter(props_by_id.values()))
    facts: dict[str, Any] = {"detected_by": detected_by}
    if router:
        facts["router"] = True
    if props_json is not None:
        facts.update(native.llamacpp_props_facts(props_json))
        if len(items) > 1 or router:
            facts.pop("model_path", None)
            facts.pop("n_ctx", None)
    build = next((d.get("build_info") for d in (props_json, top) if d and d.get("build_info")), None)
    version = str(build) if build else None
    return _Found(LLAMACPP, native.parse_llamacpp(items, name, props_json, props_by_id), version, facts)


def _lmstudio_unservable(models: list[ModelInfo], openai_items: list[dict] | None) -> dict[str, str]:
    """Models LM Studio lists natively but not on /v1/models (JIT loading off): chat would fail.

    Applied only when the two lists share at least one id, so a naming difference between LM
    Studio versions cannot exclude everything.
    """
    if not openai_items:
        return {}
    served = {str(it.get("id")) for it in openai_items}
    ids = {m.id for m in models}
    if not ids & served:
        return {}
    return {
        m.id: "not served on /v1/models (LM Studio JIT loading off? load it first)"
        for m in models
        if m.id not in served
    }


async def _ollama(probe: _Probe, tags: list[dict], name: str) -> _Found:
    gate = asyncio.Semaphore(PER_MODEL_CONCURRENCY)

    async def show(model: str) -> tuple[str, Any]:
        async with gate:
            ans = await probe.post("/api/show", {"model": model, "name": model})
        return model, ans.json if ans.ok else None

    names = [n for n in (native.ollama_name(t) for t in tags) if n]
    shows, ps, version = await asyncio.gather(
        asyncio.gather(*(show(n) for n in names)), probe.get("/api/ps"), probe.get("/api/version")
    )
    running = ps.json if ps.ok else None
    models = native.parse_ollama(tags, name, dict(shows), running, _version(version))
    return _Found(OLLAMA, models, _version(version), {"detected_by": "/api/tags"})


# ---------------------------------------------------------------------------------------------


async def discover(
    base_urls: Sequence[str],
    *,
    probe_defaults: bool = True,
    host: str = "127.0.0.1",
    api_key: str | None = None,
    timeout_s: float = 2.0,
) -> tuple[list[Provider], list[str], dict[str, str]]:
    """Probe the default ports (if asked) and every base URL concurrently.

    Returns (providers found, every root URL probed in order, {root URL: reason} for the rest).
    Each request has `timeout_s` as its whole budget; per-model requests (Ollama /api/show,
    llama.cpp router /props?model=) run PER_MODEL_CONCURRENCY at a time.
    """
    roots: list[str] = []
    if probe_defaults:
        roots.extend(f"http://{host}:{port}" for _, port in DEFAULT_PORTS)
    for url in base_urls:
        if url and url.strip():
            roots.append(normalise_base_url(url))
    roots = list(dict.fromkeys(roots))
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"

    async def one(root: str) -> _Found | str:
        host_name, _ = _host_port(root)
        timeout = httpx.Timeout(timeout_s)
        try:
            async with httpx.AsyncClient(
                timeout=timeout, headers=headers, trust_env=not is_loopback(host_name), follow_redirects=True
            ) as client:
                return await _probe_root(client, root, timeout_s)
        except Exception as exc:  # a bad server must never take discovery down
            return f"probe failed ({type(exc).__name__}: {str(exc)[:120]})"

    results = await asyncio.gather(*(one(r) for r in roots))
    providers: list[Provider] = []
    unreachable: dict[str, str] = {}
    used: set[str] = set()
    for root, found in zip(roots, results, strict=True):
        if isinstance(found, str):
            unreachable[root] = found
            continue
        h, port = _host_port(root)
        pname = f"{found.kind}@{h}:{port}"
        n = 2
        while pname in used:
            pname = f"{found.kind}@{h}:{port}#{n}"
            n += 1
        used.add(pname)
        for m in found.models:
            m.provider = pname
        providers.append(
            Provider(
                name=pname,
                kind=found.kind,
                base_url=root,
                api_key=api_key,
                version=found.version,
                models=found.models,
                native=found.native,
            )
        )
    return providers, roots, unreachable
