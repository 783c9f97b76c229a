"""The real-server tier, part 2: single requests to llama.cpp's `llama-server`, and how soaktui reads them.

- The chat template the server runs renders SmolLM2's ChatML exactly, and Hermes-style tools.
- A prompt over the slot's 2048 tokens: llama-server refuses it at once with HTTP 400
  (`exceed_context_size_error`), streamed or not; soaktui classifies it `context_overflow`, and so
  does the large_context scenario when it does not know the model's context.
- A prompt that fits but whose max_tokens would run past the slot: llama-server takes it (HTTP 200)
  and stops generating at the end of the slot with finish_reason "length"; soaktui counts that as
  a truncated answer, not an error.
- Connections: llama-server closes the connection after every streamed answer (despite its
  Keep-Alive header), and keeps it after a whole one.
- Structured output: `response_format: json_schema` is taken and enforced with a grammar.
- Tool calling in native mode (`tools` + tool_choice "auto") through the tool_calling scenario:
  every answer is detected and scored. SmolLM2-135M usually answers in prose even with a tool-capable
  template: that is recorded (printed with -rP), not asserted.
- llama-server's own tool-call parser, driven by an assistant prefill: whatever it returns (native
  `tool_calls`, streamed as deltas, or the HTTP 500 it sends when the output does not parse) is
  read and classified right.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
from dataclasses import replace

import httpx
import pytest

from soaktui import errors
from soaktui.config import load_settings
from soaktui.providers.client import ChatClient
from soaktui.providers.types import LLAMACPP, ModelInfo, Provider
from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext, judge
from soaktui.scenarios.large_context import LargeContext
from soaktui.scenarios.schema_tasks import load_tasks
from soaktui.scenarios.structured_output import JSON_SCHEMA, StructuredOutput
from soaktui.scenarios.tool_calling import ToolCalling
from soaktui.toolcalls import catalog
from soaktui.toolcalls.detect import FORMATS, detect
from soaktui.toolcalls.prompts import ToolPromptBank, parse_entry, shipped_bank
from soaktui.toolcalls.scoring import CHECKS, VERDICTS
from tests.realserver import SLOT_CTX, text_of_tokens
from tests.scenario_driver import run_tests

pytestmark = pytest.mark.real_server




def _provider(llama) -> Provider:
    return Provider(name="llama", kind=LLAMACPP, base_url=llama.base_url)


def _model(llama, context_length: int | None = SLOT_CTX) -> ModelInfo:
    return ModelInfo(id=llama.model_id, provider="llama", context_length=context_length, tool_use=True)


def _run(llama, scenario: Scenario, n: int, settings=None, model=None) -> tuple[list[Outcome], list, list]:
    settings = settings or load_settings(None, {}, {"timeouts.request": "300"})
    requests: list[dict] = []
    events: list[dict] = []

    async def go() -> list[Outcome]:
        async with ChatClient(llama.base_url, read_timeout_s=300) as client:
            return await run_tests(
                scenario, client, _provider(llama), model or _model(llama), settings, n,
                requests=requests, events=events,
            )  # fmt: skip

    return asyncio.run(go()), requests, events


# -- the chat template -----------------------------------------------------------------------------------


def test_the_template_renders_smollm2_chatml_and_hermes_tools(llama):
    """tests/data/templates/chatml_tools.jinja as llama-server renders it (/apply-template): without
    tools, byte for byte the GGUF's own template; with tools, the Hermes layout, calls and results."""

    def render(messages, tools=None) -> str:
        body = {"messages": messages, **({"tools": tools} if tools else {})}
        return httpx.post(f"{llama.base_url}/apply-template", json=body, timeout=30).json()["prompt"]

    assert render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render([{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    call = {
        "id": "c0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    text = render(
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c0", "content": '{"temperature_c": 18.5}'},
        ],
        catalog.tools(("get_weather",)),
    )
    assert text.startswith("<|im_start|>system\n# Tools\n") and '"name": "get_weather"' in text
    assert text.endswith(
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call><|im_end|>\n"
        '<|im_start|>user\n<tool_response>\n{"temperature_c": 18.5}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    ), text


# -- over the context ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_prompt_over_the_slot_context_is_context_overflow(llama, stream):
    text = text_of_tokens(llama.base_url, 3000)

    async def go():
        async with ChatClient(llama.base_url) as client:
            return await client.chat(
                llama.model_id, [{"role": "user", "content": text}], stream=stream, max_tokens=16
            )

    r = asyncio.run(go())
    assert (r.ok, r.error_class, r.http_status) == (False, errors.CONTEXT_OVERFLOW, 400), r.error
    assert "exceed_context_size_error" in r.body_excerpt
    assert f"exceeds the available context size ({SLOT_CTX} tokens)" in r.error
    assert r.output_tokens is None and r.prompt_tokens is None  # nothing is made up
    print(f"\noverflow ({'stream' if stream else 'whole'}): {r.error} [{r.e2e_ms:.0f} ms]")


def test_large_context_that_does_not_know_the_context_meets_the_overflow(llama):
    """With the model's context unknown, large_context plans 2,500-3,000 tokens for a 2048 slot: the
    test fails as context_overflow (not a crash, not a generic HTTP error)."""
    settings = load_settings(
        None,
        {},
        {"thresholds.large_context_min_tokens": "2500", "thresholds.large_context_max_tokens": "3000"},
    )
    (outcome,), requests, _ = _run(llama, LargeContext(), 1, settings, _model(llama, None))
    (req,) = requests
    assert (req["ok"], req["error_class"], req["http_status"]) == (False, errors.CONTEXT_OVERFLOW, 400), req
    assert (outcome.ok, outcome.error_class) == (False, errors.CONTEXT_OVERFLOW), outcome


class _OverTheEnd(Scenario):
    """One request whose prompt fits the slot but whose max_tokens reaches past its end."""

    name = "over_the_end"
    success_rule = "a complete answer"

    def __init__(self, text: str, max_tokens: int, stream: bool, extra: dict | None) -> None:
        self.text, self.max_tokens, self.stream, self.extra = text, max_tokens, stream, extra

    async def run(self, ctx: ScenarioContext) -> Outcome:
        messages = [{"role": "user", "content": f"{self.text}\n\nContinue this document."}]
        r = await ctx.chat(
            messages, stream=self.stream, max_tokens=self.max_tokens, temperature=0.0, extra=self.extra
        )
        return judge(r)


@pytest.mark.timeout(600)
def test_prompt_plus_max_tokens_over_the_slot_is_accepted_and_stops_at_its_end(llama):
    """llama-server does not check prompt + max_tokens against the slot: it takes the request and,
    with context shift off (the default), stops when the slot is full: finish_reason "length",
    prompt + completion = n_ctx. As a user sends it (the model may stop on its own first), and with
    llama.cpp's ignore_eos so that generation surely reaches the end of the slot."""
    text = text_of_tokens(llama.base_url, 1850)
    max_tokens = 400
    seen = []
    for stream, extra in ((True, None), (False, {"ignore_eos": True})):
        (outcome,), (req,), _ = _run(llama, _OverTheEnd(text, max_tokens, stream, extra), 1)
        prompt, out = req["prompt_tokens"], req["output_tokens"]
        seen.append(
            f"stream={stream} extra={extra}: HTTP {req['http_status']}, prompt {prompt} + max_tokens "
            f"{max_tokens} > {SLOT_CTX}; {out} tokens, finish_reason {req['finish_reason']}, "
            f"prompt + output = {prompt + out}"
        )
        assert req["http_status"] == 200 and req["ok"] and req["error_class"] is None, req
        assert outcome.ok and outcome.error_class is None, outcome
        assert prompt < SLOT_CTX < prompt + max_tokens, seen[-1]
        assert req["prompt_truncated"] is False, req  # the server counted the whole prompt
        assert prompt + out <= SLOT_CTX, seen[-1]
        assert req["finish_reason"] in ("length", "stop"), seen[-1]
        if req["finish_reason"] == "length":
            assert req["truncated"] is True
            assert prompt + out == SLOT_CTX, seen[-1]  # stopped at the end of the slot, not at max_tokens
        if extra:
            assert req["finish_reason"] == "length", seen[-1]
    print("\nprompt + max_tokens over the slot:\n  " + "\n  ".join(seen))


# -- connections ---------------------------------------------------------------------------------------


def _raw_request(sock: socket.socket, body: dict) -> tuple[bytes, bytes]:
    """One HTTP/1.1 chat request on `sock`; the response head and body, read to their end."""
    payload = json.dumps(body).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    buf = b""
    while True:
        data = sock.recv(65536)
        assert data, f"connection closed before the response ended: {buf[-200:]!r}"
        buf += data
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            continue
        if b"transfer-encoding: chunked" in head.lower():
            if rest.endswith(b"\r\n0\r\n\r\n"):
                return head, rest
        else:
            length = next(
                int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
            )
            if len(rest) >= length:
                return head, rest


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    readable, _, _ = select.select([sock], [], [], seconds)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


def test_llama_server_closes_the_connection_after_every_streamed_response(llama):
    """A finding about the server, which a client must live with. llama-server's streamed answers
    (tools/server/server-http.cpp) end with sink.done() and then return has_next = false from the
    chunked content provider; cpp-httplib takes a provider's false as "canceled" and closes the
    connection, although the response is complete and its headers promised `Keep-Alive: timeout=5,
    max=100`. Non-streamed answers keep the connection open. A client that reuses the connection
    straight after a stream can write its next request into the closing socket: httpx then raises
    "Server disconnected without sending a response", which soaktui classifies connection_dropped
    (about 3 in 100 back-to-back streams on this machine)."""
    chat = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0.0}
    with socket.create_connection(("127.0.0.1", llama.port), timeout=60) as sock:
        head, _ = _raw_request(sock, {**chat, "stream": True})
        assert head.startswith(b"HTTP/1.1 200") and b"keep-alive: timeout=5" in head.lower(), head
        assert _closed_within(sock, 5.0), "llama-server kept the connection open after a stream"
    with socket.create_connection(("127.0.0.1", llama.port), timeout=60) as sock:
        for _ in range(2):  # the same connection answers twice
            head, _ = _raw_request(sock, {**chat, "stream": False})
            assert head.startswith(b"HTTP/1.1 200"), head
            assert not _closed_within(sock, 0.3), "llama-server closed the connection after a whole answer"


# -- structured output ---------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_structured_output_is_taken_as_json_schema_and_constrained(llama):
    """llama-server takes OpenAI's `response_format: json_schema` as it is (no refusal, no
    fallback) and constrains the answer with a grammar built from the schema: every answer not cut
    by max_tokens parses. The grammar does not enforce every keyword (formats, some bounds), so
    schema validity is measured, not assumed."""
    wanted = {"so-product-catalog", "so-sla-report"}  # tasks SmolLM2 usually finishes within 320 tokens
    settings = load_settings(None, {}, {"thresholds.structured_max_tokens": "320", "timeouts.request": "300"})
    outcomes, requests = [], []
    for task in (t for t in load_tasks() if t.id in wanted):
        # One client per test: a request sent at once after a stream on the same connection can
        # meet the close llama-server does after every stream (see the keep-alive test below).
        (outcome,), reqs, _ = _run(llama, StructuredOutput([task]), 1, settings)
        outcomes.append(outcome)
        requests += reqs
    assert len(requests) == 2 and all(r["ok"] and r["http_status"] == 200 for r in requests), [
        (r["http_status"], r["error_class"], r["error"]) for r in requests
    ]
    seen = []
    for o in outcomes:
        m = o.metrics
        assert (m["mode"], m["response_format"], m["fallback"]) == (JSON_SCHEMA, JSON_SCHEMA, None), m
        assert o.ok == m["schema_valid"]
        if m["finish_reason"] == "length":
            # Cut by max_tokens. llama-server's process_token (tools/server/server-context.cpp)
            # stops on the budget (n_decoded >= n_predict, STOP_TYPE_LIMIT) right after a token is
            # added, before the end-of-generation token could be sampled, so an object closed by
            # the last allowed token is "length" yet complete: only a cut object is a truncation
            # (seen in CI on 2b21819).
            assert m["failure"] == "truncated" or (m["parsed"] and m["failure"] is None), m
        else:
            assert m["parsed"], m
        seen.append(
            f"{m['schema_id']}: {m['output_tokens']} tokens, {m['finish_reason']}, failure {m['failure']}"
        )
    print("\nstructured output (json_schema):\n  " + "\n  ".join(seen))


# -- tool calling --------------------------------------------------------------------------------------


# The shipped bank offers all ten catalog tools with every prompt: about 2,200-2,300 tokens once
# rendered, more than a 2048-token slot (see the last test below). These prompts offer only the tools
# they need plus one decoy, so that the model really gets to answer.
def _few_tools(prompt_id: str, decoy: str = "get_current_time"):
    p = shipped_bank().get(prompt_id)
    wanted = {c.name for c in p.calls} | {decoy}
    return replace(p, tools=tuple(n for n in catalog.TOOL_NAMES if n in wanted))


# BFCL's "simple" shape (one tool offered), multi-turn: the result goes back after a right call.
WEATHER_PROMPT = parse_entry(
    {
        "id": "real-weather-paris",
        "kind": "multi_turn",
        "prompt": "What is the weather in Paris?",
        "tools": ["get_weather"],
        "calls": [{"name": "get_weather", "arguments": {"city": ["Paris"]}}],
        "results": [{"city": "Paris", "temperature_c": 18.5, "condition": "light rain"}],
        "answer_contains": [18.5],
    },
    "test_real_server",
)
SHIPPED = (
    "explicit-weather-lisbon-imperial",
    "implicit-cpu-web01",
    "irrelevant-capital-australia",
    "parallel-weather-paris-madrid",
)


def _rendered_tokens(llama, p) -> int:
    """The prompt tokens of `p` in native mode, rendered by the server's own template."""
    body = {"messages": [{"role": "user", "content": p.prompt}], "tools": catalog.tools(p.tools)}
    text = httpx.post(f"{llama.base_url}/apply-template", json=body, timeout=30).json()["prompt"]
    return len(httpx.post(f"{llama.base_url}/tokenize", json={"content": text}, timeout=30).json()["tokens"])


def _attempt(llama, p, settings) -> tuple[Outcome, list[dict], dict]:
    (outcome,), requests, events = _run(llama, ToolCalling("native", ToolPromptBank([p])), 1, settings)
    (event,) = events
    assert event["kind"] == "tool_call" and event["mode"] == "native" and event["prompt_id"] == p.id
    assert event["verdict"] in VERDICTS and event["format"] in FORMATS, event
    assert set(event["checks"]) == set(CHECKS)
    assert outcome.metrics["verdict"] == event["verdict"] and outcome.ok == event["correct"]
    assert requests[0]["tool_mode"] == "native" and requests[0]["turn"] == 1
    return outcome, requests, event


@pytest.mark.timeout(600)
def test_native_tool_requests_are_detected_and_scored(llama):
    """`tools` + tool_choice "auto" against a template llama-server says supports tool calls: each
    answer, call or prose, is detected and judged with the scoring vocabulary."""
    settings = load_settings(None, {}, {"timeouts.request": "300", "thresholds.tool_max_tokens": "64"})
    observed = []
    for p in [WEATHER_PROMPT, *(_few_tools(i) for i in SHIPPED)]:
        outcome, requests, event = _attempt(llama, p, settings)
        first = requests[0]
        assert first["ok"] and first["http_status"] == 200, first  # the server took `tools`
        assert first["prompt_tokens"] < SLOT_CTX
        assert event["verdict"] != "request_failed" and isinstance(event["checks"]["decision"], bool)
        if event["format"] == "native":  # the server's parser turned the answer into tool_calls
            assert event["trust"] == 3 and first["tool_calls"] >= 1
        else:
            assert first["tool_calls"] == 0 and event["trust"] < 3
        if len(requests) == 2:  # a right multi-turn call: the result went back and was answered
            assert requests[1]["turn"] == 2 and requests[1]["ok"], requests[1]
        observed.append(
            f"{p.id} ({p.kind}, {len(p.tools)} tools, {first['prompt_tokens']} prompt tokens): format "
            f"{event['format']}, verdict {event['verdict']}, {first['output_tokens']} tokens, finish "
            f"{first['finish_reason']}, calls {event['calls']}"
        )
    print("\nSmolLM2-135M with tools offered natively:\n  " + "\n  ".join(observed))


def test_a_tool_list_too_long_for_the_slot_is_retried_shorter_and_scored(llama):
    """The shipped bank offers all ten tools: rendered by this template that is more than a
    2048-token slot holds. llama-server refuses it (HTTP 400, exceeds the context); that request is
    soaktui's own prompt size, logged as `tools_did_not_fit` (counted by no reliability figure), and
    the attempt is asked again with fewer tools until it fits, then scored like any other."""
    p = shipped_bank().get("irrelevant-capital-australia")
    need = _rendered_tokens(llama, p)
    assert need >= SLOT_CTX, f"the shipped catalog now fits the slot ({need} tokens): this test needs a longer list"
    settings = load_settings(None, {}, {"timeouts.request": "300", "thresholds.tool_max_tokens": "64"})
    outcome, requests, event = _attempt(llama, p, settings)
    first, last = requests[0], requests[-1]
    assert (first["error_class"], first["http_status"]) == (errors.TOOLS_DID_NOT_FIT, 400), first
    assert first["tools_offered"] == len(p.tools)
    assert all(r["error_class"] == errors.TOOLS_DID_NOT_FIT for r in requests[:-1])
    assert last["ok"] and last["tools_offered"] < len(p.tools) and last["prompt_tokens"] < SLOT_CTX, last
    assert event["verdict"] != "request_failed" and isinstance(event["checks"]["decision"], bool)
    assert outcome.metrics["tools_offered"] == last["tools_offered"]
    print(
        f"\nshipped catalog ({len(p.tools)} tools): {need} prompt tokens for a {SLOT_CTX}-token slot; "
        f"answered with {last['tools_offered']} tools ({last['prompt_tokens']} prompt tokens) after "
        f"{len(requests) - 1} refused request(s), verdict {event['verdict']}"
    )


# Assistant prefills that open a Hermes call. Greedy SmolLM2 continues the first by echoing the tool's
# schema until max_tokens (a cut call: llama-server's lenient partial parse returns it as tool_calls);
# it closes the second call and then writes prose after </tool_call>, which the strict final parse
# rejects. Either outcome is accepted for either prefill: the model's choice is not the point.
PREFILLS = {
    "cut": '<tool_call>\n{"name": "get_weather", "arguments": ',
    "closed": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "',
}


@pytest.mark.parametrize("prefill", sorted(PREFILLS))
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_the_servers_tool_call_parser_output_is_read_right(llama, stream, prefill):
    """A prefilled assistant turn makes llama-server's tool-call parser (the autoparser it derives
    from the template) read the continuation; the lazy tool grammar never starts, since its trigger
    is in the prefill. Parsed, the call comes back as native `tool_calls` (streamed as deltas: id
    and name once, arguments in pieces), which soaktui merges and detects as native. Unparsable
    (text after </tool_call>), llama-server answers HTTP 500 "The model produced output that does
    not match the expected peg-native format": as the status when not streaming, as an error object
    after the deltas already sent when streaming. soaktui must classify both as server errors."""
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": PREFILLS[prefill]},
    ]

    async def go():
        async with ChatClient(llama.base_url) as client:
            return await client.chat(
                llama.model_id,
                messages,
                stream=stream,
                max_tokens=48,
                temperature=0.0,
                extra={"tools": catalog.tools(("get_weather",))},
            )

    r = asyncio.run(go())
    if r.ok:
        assert r.tool_calls, (r.content, r.finish_reason)
        (call,) = r.tool_calls
        assert call["function"]["name"] == "get_weather" and call["id"]
        d = detect(r.content, r.tool_calls, ("get_weather",))
        assert (d.format, d.trust) == ("native", 3)
        assert r.output_tokens and r.token_source == "usage"
        seen = f"HTTP 200, native tool_calls {call['function']}, finish_reason {r.finish_reason}"
    else:
        assert "does not match the expected" in r.error, r.error
        if stream:
            assert (r.http_status, r.error_class) == (200, errors.STREAM_ERROR), r.error
        else:
            assert (r.http_status, r.error_class) == (500, errors.HTTP_STATUS), r.error
        merged = f", tool_calls streamed before the error: {r.tool_calls}" if r.tool_calls else ""
        seen = f"HTTP {r.http_status}, {r.error_class}: {r.error}{merged}"
    print(f"\nprefill {prefill!r} ({'stream' if stream else 'whole'}): {seen}")
