#!/usr/bin/env python3
"""Cross-check `batchkit emulator` against the providers' official Python SDKs.

Not run by CI (nothing in CI depends on these SDKs). Every check ASSERTS; the script exits 1 if
any check failed and prints one line per check.

How to run (versions this was last run with in brackets):

    python3 -m venv /tmp/sdk
    /tmp/sdk/bin/pip install 'openai==3.57.0' 'anthropic==2.16.0' 'google-genai==3.6.1'
    swift build -c release --product batchkit
    .build/release/batchkit emulator --port 18793 --api-key sk-crosscheck --batch-seconds 3 &
    # the expired-result checks need a second emulator whose batches expire half-way:
    .build/release/batchkit emulator --port 18794 --api-key sk-crosscheck --batch-seconds 4 \
        --batch-expiry-seconds 2 &
    /tmp/sdk/bin/python Scripts/sdk-crosscheck.py            # or: ... --only openai,anthropic,gemini

Environment: EMULATOR_URL (default http://127.0.0.1:18793), EXPIRING_URL (default
http://127.0.0.1:18794; set it to "" to skip the expiry checks), EMULATOR_KEY (default
sk-crosscheck; any other key must be refused with 401/400). Point EMULATOR_URL at another
emulator to run the same checks against it; the batch checks assume batches take a few seconds
(cancel mid-way needs a batch still running about 0.5 s after it was created).
"""

import argparse
import base64
import io
import json
import os
import struct
import sys
import tempfile
import time
import traceback
from datetime import datetime

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

BASE = os.environ.get("EMULATOR_URL", "http://127.0.0.1:18793").rstrip("/")
EXPIRING = os.environ.get("EXPIRING_URL", "http://127.0.0.1:18794").rstrip("/")
KEY = os.environ.get("EMULATOR_KEY", "sk-crosscheck")
BIG = 3000  # requests in the large batches (several storage chunks; >8 MiB Gemini upload)

passed = 0
failures: list[str] = []


def check(cond, what, detail=""):
    """One assertion: counted, printed, never fatal for the rest of the run."""
    global passed
    if cond:
        passed += 1
    else:
        msg = f"FAIL {what}" + (f": {detail}" if detail != "" else "")
        failures.append(msg)
        print("  " + msg)
    return bool(cond)


def eq(actual, expected, what):
    return check(actual == expected, what, f"expected {expected!r}, got {actual!r}")


def is_type(value, typ, what):
    return check(isinstance(value, typ) and not (typ is int and isinstance(value, bool)), what,
                 f"expected {typ.__name__}, got {type(value).__name__} {value!r}")


def strict(model, text, what):
    """Validates the raw JSON with the SDK's own pydantic model in strict mode (ints are ints,
    timestamps parse, literals are in the SDK's enums): what the SDK would accept without coercion."""
    try:
        value = model.model_validate_json(text, strict=True)
        check(True, what)
        return value
    except Exception as e:  # pydantic.ValidationError
        check(False, f"{what} validates strictly as {model.__name__}", str(e)[:600])
        return None


def strict_union(type_, text, what):
    """`strict` for a union type alias (e.g. ResponseStreamEvent), through a pydantic TypeAdapter."""
    from pydantic import TypeAdapter
    try:
        value = TypeAdapter(type_).validate_json(text, strict=True)
        check(True, what)
        return value
    except Exception as e:
        check(False, f"{what} validates strictly", str(e)[:600])
        return None


def sse_events(url, headers, body):
    """The raw (event name, data) pairs of a server-sent event stream (POST with a JSON body)."""
    import urllib.request
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={**headers, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        content_type = r.headers.get("content-type", "")
        text = r.read().decode()
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        out.append((name, data))
    return content_type, out


def txt(raw):
    """The body of a `with_raw_response` answer (`.text` is a property in openai, a method in anthropic)."""
    t = raw.text
    return t() if callable(t) else t


def wait(fn, done, what, timeout=40.0):
    deadline = time.monotonic() + timeout
    value = fn()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = fn()
    check(done(value), f"{what} reaches a terminal state within {timeout:.0f} s", repr(value)[:300])
    return value


def expect_error(fn, exc, what, status=None):
    try:
        fn()
    except exc as e:
        check(True, what)
        if status is not None:
            code = getattr(e, "status_code", None) or getattr(e, "code", None)
            eq(code, status, f"{what}: status")
        return e
    except Exception as e:  # the wrong exception type
        check(False, what, f"raised {type(e).__name__}: {str(e)[:300]}")
        return None
    check(False, what, "no exception raised")
    return None


# ---------------------------------------------------------------------------------------------
# OpenAI
# ---------------------------------------------------------------------------------------------

OPENAI_TERMINAL = {"completed", "failed", "expired", "cancelled"}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


RESP_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                            "required": ["city", "unit"], "additionalProperties": False}}
RESP_TOOL_2 = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}


def responses_checks(o, City):
    """Responses API: the Response strictly, streaming events (SDK iteration, the `responses.stream`
    helper, raw events strictly as ResponseStreamEvent), forced function calls (plain and streamed)."""
    from openai.types.responses import Response, ResponseStreamEvent

    raw = o.responses.with_raw_response.create(model="gpt-4o-mini", input="Say hello", max_output_tokens=50)
    plain = strict(Response, txt(raw), "openai responses.create: Response")
    check(raw.headers.get("x-request-id", "").startswith("req_"), "openai responses: x-request-id")
    r = raw.parse()
    check(r.id.startswith("resp_") and r.output[0].type == "message" and r.output_text, "openai responses: message with text", r.output)
    eq(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens, "openai responses: usage total")

    # stream=True: the SDK yields typed events.
    events = list(o.responses.create(model="gpt-4o-mini", input="Say hello", max_output_tokens=50, stream=True))
    types_ = [e.type for e in events]
    check(len(events) >= 9, "openai responses stream: events arrive", types_)
    if events:
        eq(types_[:4], ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"],
           "openai responses stream: opening events")
        eq(types_[-4:], ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"],
           "openai responses stream: closing events")
        eq([e.sequence_number for e in events], list(range(len(events))), "openai responses stream: sequence_number 0, 1, …")
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        done = [e.text for e in events if e.type == "response.output_text.done"]
        final = events[-1].response
        eq(done, [deltas], "openai responses stream: deltas add up to output_text.done")
        eq(final.output_text, deltas, "openai responses stream: completed response text = deltas")
        eq(events[0].response.id, final.id, "openai responses stream: one response id")
        eq((events[0].response.status, final.status), ("in_progress", "completed"), "openai responses stream: status in_progress -> completed")
        check(final.usage is not None and final.usage.output_tokens > 0, "openai responses stream: usage on completed")
        if plain is not None:
            eq(deltas, plain.output_text, "openai responses stream: same text as the plain call")
        item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
        eq(item_ids, {final.output[0].id}, "openai responses stream: item_id of every content event")

    # Cut by max_output_tokens: the stream ends with response.incomplete.
    events = list(o.responses.create(model="gpt-4o-mini", input="Tell me a long story", max_output_tokens=5, stream=True))
    if check(events, "openai responses stream (max_output_tokens=5): events"):
        eq(events[-1].type, "response.incomplete", "openai responses stream cut short: last event response.incomplete")
        eq((events[-1].response.status, events[-1].response.incomplete_details.reason if events[-1].response.incomplete_details else None),
           ("incomplete", "max_output_tokens"), "openai responses stream cut short: status and reason")

    # Raw events, each strictly a ResponseStreamEvent of the type its `event:` line names.
    content_type, raw_events = sse_events(BASE + "/v1/responses", {"authorization": f"Bearer {KEY}"},
                                  {"model": "gpt-4o-mini", "input": "Say hello", "stream": True, "tools": [RESP_TOOL],
                                   "tool_choice": "auto"})
    check(content_type.startswith("text/event-stream"), "openai responses stream: text/event-stream", content_type)
    check(raw_events and all(n and json.loads(d)["type"] == n for n, d in raw_events), "openai responses stream: event: line = data.type")
    check(not any(d == "[DONE]" for _, d in raw_events), "openai responses stream: no [DONE]")
    for n, d in raw_events:
        strict_union(ResponseStreamEvent, d, f"openai responses raw event {n}")

    # The `responses.stream` helper assembles the response (and parses text_format).
    with o.responses.stream(model="gpt-4o-mini", input="Say hello") as stream:
        seen = [e.type for e in stream]
        final = stream.get_final_response()
    check("response.output_text.delta" in seen and final.output_text, "openai responses.stream: final response with text", seen)
    with o.responses.stream(model="gpt-4o-mini", input="Paris", text_format=City) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    check(isinstance(final.output_parsed, City), "openai responses.stream(text_format=City): parsed", final.output_text)

    # Forced function calls: required (first function tool), named, auto.
    raw = o.responses.with_raw_response.create(model="gpt-4o-mini", input="Weather in Paris?", tools=[RESP_TOOL, RESP_TOOL_2],
                                               tool_choice="required")
    strict(Response, txt(raw), "openai responses tool_choice required: Response")
    r = raw.parse()
    call = r.output[0] if r.output else None
    if check(call is not None and call.type == "function_call", "openai responses tool_choice required: a function_call item",
             r.output):
        eq(call.name, "get_weather", "openai responses function_call: first function tool")
        check(call.id.startswith("fc_") and call.call_id.startswith("call_"), "openai responses function_call: ids fc_/call_", call)
        args = json.loads(call.arguments)
        check(isinstance(args.get("city"), str) and args.get("unit") in ("c", "f") and set(args) == {"city", "unit"},
              "openai responses function_call: arguments fit the schema", call.arguments)
        eq(call.status, "completed", "openai responses function_call: status")
        eq(r.output_text, "", "openai responses function_call: no output_text")
        # The tool result continues with text.
        r2 = o.responses.create(model="gpt-4o-mini", tools=[RESP_TOOL], input=[
            {"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}])
        check(r2.output and r2.output[0].type == "message" and r2.output_text, "openai responses function_call_output: answered with text")
    r = o.responses.create(model="gpt-4o-mini", input="What time is it?", tools=[RESP_TOOL, RESP_TOOL_2],
                           tool_choice={"type": "function", "name": "get_time"})
    check(r.output and r.output[0].type == "function_call" and r.output[0].name == "get_time",
          "openai responses named tool_choice: that function", r.output)
    r = o.responses.create(model="gpt-4o-mini", input="Hello", tools=[RESP_TOOL], tool_choice="auto")
    check(r.output and r.output[0].type == "message", "openai responses tool_choice auto: a message")
    err = expect_error(lambda: o.responses.create(model="gpt-4o-mini", input="x", tools=[WEATHER_TOOL], tool_choice="required"),
                       openai.BadRequestError, "openai responses: chat-shaped tool refused", 400)
    if err is not None:
        eq(err.body.get("param") if isinstance(err.body, dict) else None, "tools[0].name", "openai responses chat-shaped tool: param")

    # A streamed function call.
    events = list(o.responses.create(model="gpt-4o-mini", input="Weather?", tools=[RESP_TOOL], tool_choice="required", stream=True))
    types_ = [e.type for e in events]
    check("response.function_call_arguments.delta" in types_ and "response.function_call_arguments.done" in types_,
          "openai responses stream function call: argument events", types_)
    if events and events[-1].type == "response.completed":
        final = events[-1].response
        joined = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        done = [e.arguments for e in events if e.type == "response.function_call_arguments.done"]
        eq(done, [joined], "openai responses stream function call: deltas add up to .done")
        eq(final.output[0].arguments, joined, "openai responses stream function call: completed item arguments")
        added = [e.item for e in events if e.type == "response.output_item.added"]
        check(added and added[0].type == "function_call" and added[0].arguments == "" and added[0].name == "get_weather",
              "openai responses stream function call: item opens empty", added)
    with o.responses.stream(model="gpt-4o-mini", input="Weather?", tools=[RESP_TOOL], tool_choice="required") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    check(final.output and final.output[0].type == "function_call" and json.loads(final.output[0].arguments).get("city"),
          "openai responses.stream function call: final response", final.output)


def openai_checks():
    from openai.types import Batch, CreateEmbeddingResponse, FileDeleted, FileObject
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    o = openai.OpenAI(api_key=KEY, base_url=BASE + "/v1", max_retries=0)

    # Chat completion, plain.
    raw = o.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], max_completion_tokens=20)
    check(raw.headers.get("x-request-id", "").startswith("req_"), "openai: x-request-id header", raw.headers.get("x-request-id"))
    strict(ChatCompletion, txt(raw), "openai chat completion")
    r = raw.parse()
    check(r.id.startswith("chatcmpl-"), "openai chat: id chatcmpl-", r.id)
    eq(r.object, "chat.completion", "openai chat: object")
    is_type(r.created, int, "openai chat: created")
    check(len(r.choices) == 1 and isinstance(r.choices[0].message.content, str) and r.choices[0].message.content,
          "openai chat: one choice with text")
    check(r.choices[0].finish_reason in ("stop", "length"), "openai chat: finish_reason", r.choices[0].finish_reason)
    eq(r.choices[0].message.role, "assistant", "openai chat: role")
    eq(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens, "openai chat: usage total")
    check(r.usage.completion_tokens <= 20, "openai chat: completion_tokens within max_completion_tokens")

    # Tools: required, named, none.
    r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Paris?"}],
                                  tools=[WEATHER_TOOL], tool_choice="required")
    eq(r.choices[0].finish_reason, "tool_calls", "openai tools required: finish_reason")
    calls = r.choices[0].message.tool_calls or []
    if check(len(calls) >= 1, "openai tools required: a tool call"):
        c = calls[0]
        eq(c.type, "function", "openai tool call: type")
        eq(c.function.name, "get_weather", "openai tool call: name")
        check(c.id.startswith("call_"), "openai tool call: id call_", c.id)
        args = json.loads(c.function.arguments)
        check(isinstance(args, dict) and isinstance(args.get("city"), str), "openai tool call: arguments JSON with required city", c.function.arguments)
        # Answer the tool call: the conversation continues with text.
        r2 = o.chat.completions.create(model="gpt-4o-mini", tools=[WEATHER_TOOL], messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [c.model_dump()]},
            {"role": "tool", "tool_call_id": c.id, "content": "18C, sunny"}])
        check(r2.choices[0].message.content and r2.choices[0].finish_reason == "stop", "openai tool result: answered with text",
              r2.choices[0].finish_reason)
    r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}],
                                  tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    check(r.choices[0].message.tool_calls and r.choices[0].message.tool_calls[0].function.name == "get_weather",
          "openai tools named tool_choice: that function is called")
    r = o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}],
                                  tools=[WEATHER_TOOL], tool_choice="none")
    check(not r.choices[0].message.tool_calls and r.choices[0].finish_reason == "stop", "openai tools none: no tool call")

    # Structured output through the SDK's parse helpers (Chat Completions and Responses).
    from pydantic import BaseModel as _PM

    class City(_PM):
        name: str
        population: int

    parsed = o.chat.completions.parse(model="gpt-4o-mini", messages=[{"role": "user", "content": "Paris"}],
                                      response_format=City).choices[0].message.parsed
    check(isinstance(parsed, City), "openai chat.completions.parse: a City", parsed)
    resp = o.responses.parse(model="gpt-4o-mini", input="Paris", text_format=City)
    check(isinstance(resp.output_parsed, City), "openai responses.parse (text.format json_schema): a City", resp.output_text)
    eq((resp.object, resp.status), ("response", "completed"), "openai responses: object and status")
    responses_checks(o, City)

    # Streaming with usage.
    chunks = list(o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}],
                                            stream=True, stream_options={"include_usage": True}, max_tokens=30))
    check(len(chunks) >= 3, "openai stream: several chunks", len(chunks))
    check(all(c.object == "chat.completion.chunk" for c in chunks), "openai stream: chunk objects")
    check(len({c.id for c in chunks}) == 1, "openai stream: one id across chunks")
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    check(len(text) > 0, "openai stream: text")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check(finishes in (["stop"], ["length"]), "openai stream: one finish_reason", finishes)
    last = chunks[-1]
    check(last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0,
          "openai stream: final usage chunk with empty choices", last)
    check(all(c.usage is None for c in chunks[:-1]), "openai stream: usage only in the last chunk")
    for c in chunks:
        strict(ChatCompletionChunk, c.model_dump_json(exclude_unset=True), "openai stream chunk")
    # Streaming a tool call.
    chunks = list(o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}],
                                            tools=[WEATHER_TOOL], tool_choice="required", stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    check(deltas and deltas[0].function.name == "get_weather" and isinstance(json.loads(arguments or "null"), dict),
          "openai stream tool call: name and arguments fragments", arguments)

    # Embeddings: the SDK asks for base64 by default and decodes float32.
    raw = o.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["first", "second"])
    wire = json.loads(txt(raw))
    check(isinstance(wire["data"][0]["embedding"], str), "openai embeddings: base64 on the wire when the SDK asks")
    e = raw.parse()
    check(len(e.data) == 2 and [d.index for d in e.data] == [0, 1], "openai embeddings: two items in order")
    check(all(isinstance(x, float) for x in e.data[0].embedding) and len(e.data[0].embedding) > 0, "openai embeddings: floats")
    vec = struct.unpack(f"<{len(e.data[0].embedding)}f", base64.b64decode(wire["data"][0]["embedding"]))
    check(abs(vec[0] - e.data[0].embedding[0]) < 1e-6, "openai embeddings: little-endian float32")
    e = o.embeddings.create(model="text-embedding-3-small", input="one", encoding_format="float", dimensions=64)
    eq(len(e.data[0].embedding), 64, "openai embeddings: dimensions")
    strict(CreateEmbeddingResponse, e.model_dump_json(), "openai embeddings")
    eq(e.usage.total_tokens, e.usage.prompt_tokens, "openai embeddings: usage")

    # Models.
    from openai.types import Model
    models = list(o.models.list())
    check(len(models) > 0 and all(m.object == "model" for m in models), "openai models.list")
    strict(Model, txt(o.models.with_raw_response.retrieve("gpt-4o-mini")), "openai model")

    # Errors.
    bad = openai.OpenAI(api_key="sk-wrong", base_url=BASE + "/v1", max_retries=0)
    err = expect_error(lambda: bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]),
                       openai.AuthenticationError, "openai bad key: AuthenticationError", 401)
    if err is not None:
        check(isinstance(err.body, dict) and set(err.body) >= {"message", "type", "param", "code"}, "openai 401: error object keys", err.body)
    expect_error(lambda: bad.batches.list(), openai.AuthenticationError, "openai bad key on batches: AuthenticationError", 401)
    expect_error(lambda: o.batches.retrieve("batch_doesnotexist000000000000000000"), openai.NotFoundError, "openai unknown batch: NotFoundError", 404)
    expect_error(lambda: o.files.retrieve("file-doesnotexist"), openai.NotFoundError, "openai unknown file: NotFoundError", 404)
    expect_error(lambda: o.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=10_000_000),
                 openai.BadRequestError, "openai too many max_tokens: BadRequestError", 400)

    # Batch: files.create -> batches.create -> retrieve -> output/error files.
    def line(i, body_extra=None, custom=None):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": 20}
        body.update(body_extra or {})
        return json.dumps({"custom_id": custom or f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})

    lines = [line(0), line(1, {"tools": [WEATHER_TOOL], "tool_choice": "required"}), line(2, {"max_tokens": 10_000_000}), line(3)]
    raw = o.files.with_raw_response.create(file=("input.jsonl", io.BytesIO(("\n".join(lines) + "\n").encode())), purpose="batch")
    f = strict(FileObject, txt(raw), "openai file")
    if f is None:
        return
    check(f.id.startswith("file-"), "openai file: id", f.id)
    eq((f.object, f.purpose, f.filename, f.status), ("file", "batch", "input.jsonl", "processed"), "openai file: fields")
    eq(f.bytes, len(("\n".join(lines) + "\n").encode()), "openai file: bytes")
    is_type(f.created_at, int, "openai file: created_at")
    eq(o.files.retrieve(f.id).id, f.id, "openai files.retrieve")
    check(any(x.id == f.id for x in o.files.list(purpose="batch")), "openai files.list(purpose=batch) lists it")

    raw = o.batches.with_raw_response.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                                            metadata={"job": "crosscheck"})
    b = strict(Batch, txt(raw), "openai batch (create)")
    wire = json.loads(txt(raw))
    expected_keys = {"id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status", "output_file_id",
                     "error_file_id", "created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
                     "expired_at", "cancelling_at", "cancelled_at", "request_counts", "metadata"}
    check(expected_keys <= set(wire), "openai batch: every documented key present (nulls explicit)", expected_keys - set(wire))
    eq(b.status, "validating", "openai batch create: validating")
    check(b.id.startswith("batch_"), "openai batch: id", b.id)
    eq(b.metadata, {"job": "crosscheck"}, "openai batch: metadata echoed")
    eq(b.expires_at, b.created_at + 86400, "openai batch: expires_at = created_at + 24 h")
    b = wait(lambda: o.batches.retrieve(b.id), lambda x: x.status in OPENAI_TERMINAL, "openai batch")
    raw = o.batches.with_raw_response.retrieve(b.id)
    b = strict(Batch, txt(raw), "openai batch (completed)")
    eq(b.status, "completed", "openai batch: completed")
    eq((b.request_counts.total, b.request_counts.completed, b.request_counts.failed), (4, 3, 1), "openai batch: request_counts")
    for name in ("in_progress_at", "finalizing_at", "completed_at"):
        is_type(getattr(b, name), int, f"openai batch: {name}")
    check(b.created_at <= b.in_progress_at <= b.finalizing_at <= b.completed_at, "openai batch: timestamps in order")
    check(b.usage is not None and b.usage.total_tokens == b.usage.input_tokens + b.usage.output_tokens > 0, "openai batch: usage")
    out = o.files.content(b.output_file_id)
    out_lines = [json.loads(x) for x in out.text.splitlines() if x.strip()]
    eq(sorted(x["custom_id"] for x in out_lines), ["req-0", "req-1", "req-3"], "openai output file: custom ids")
    for x in out_lines:
        check(set(x) == {"id", "custom_id", "response", "error"} and x["error"] is None and x["id"].startswith("batch_req_"),
              "openai output line: keys", x.keys())
        eq(x["response"]["status_code"], 200, "openai output line: status_code")
        strict(ChatCompletion, json.dumps(x["response"]["body"]), "openai output line body")
    tool_line = next(x for x in out_lines if x["custom_id"] == "req-1")
    check(tool_line["response"]["body"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather",
          "openai output line: tool call in a batch")
    err_lines = [json.loads(x) for x in o.files.content(b.error_file_id).text.splitlines() if x.strip()]
    eq([x["custom_id"] for x in err_lines], ["req-2"], "openai error file: the failing line")
    if err_lines:
        eq(err_lines[0]["response"]["status_code"], 400, "openai error line: status_code 400")
        check(set(err_lines[0]["response"]["body"]["error"]) >= {"message", "type", "param", "code"}, "openai error line: error body")
        eq(err_lines[0]["error"], None, "openai error line: error null for an HTTP failure")
    of = o.files.retrieve(b.output_file_id)
    eq(of.purpose, "batch_output", "openai output file: purpose batch_output")
    expect_error(lambda: o.batches.cancel(b.id), openai.BadRequestError, "openai cancel of a completed batch: BadRequestError", 400)

    # Malformed JSONL line: the real service fails the batch in validation (errors.data, 1-based line).
    bad_file = o.files.create(file=("bad.jsonl", io.BytesIO((line(0) + "\n{not json\n" + line(2) + "\n").encode())), purpose="batch")
    fb = o.batches.create(input_file_id=bad_file.id, endpoint="/v1/chat/completions", completion_window="24h")
    fb = wait(lambda: o.batches.retrieve(fb.id), lambda x: x.status in OPENAI_TERMINAL, "openai malformed batch")
    raw = o.batches.with_raw_response.retrieve(fb.id)
    fb = strict(Batch, txt(raw), "openai batch (failed)")
    if fb is not None:
        eq(fb.status, "failed", "openai malformed line: batch failed")
        is_type(fb.failed_at, int, "openai failed batch: failed_at")
        data = fb.errors.data if fb.errors else []
        check(fb.errors is not None and fb.errors.object == "list", "openai failed batch: errors list object")
        check(len(data) >= 1 and data[0].code == "invalid_json_line" and data[0].line == 2,
              "openai malformed line: errors.data invalid_json_line at line 2", data)
        eq((fb.output_file_id, fb.error_file_id), (None, None), "openai failed batch: no files")

    # A few thousand lines, cancelled mid-way.
    big = "".join(line(i) + "\n" for i in range(BIG)).encode()
    bf = o.files.create(file=("big.jsonl", io.BytesIO(big)), purpose="batch")
    bb = o.batches.create(input_file_id=bf.id, endpoint="/v1/chat/completions", completion_window="24h")
    time.sleep(0.6)
    cb = o.batches.cancel(bb.id)
    check(cb.status in ("cancelling", "cancelled"), "openai cancel mid-way: cancelling", cb.status)
    is_type(cb.cancelling_at, int, "openai cancel: cancelling_at")
    cb = wait(lambda: o.batches.retrieve(bb.id), lambda x: x.status in OPENAI_TERMINAL, "openai cancelled batch")
    eq(cb.status, "cancelled", "openai cancel: cancelled")
    is_type(cb.cancelled_at, int, "openai cancel: cancelled_at")
    rc = cb.request_counts
    check(rc.total == BIG and rc.completed + rc.failed == BIG and 0 < rc.completed < BIG,
          "openai cancel: counts (some done, the rest failed)", rc)
    done = [json.loads(x) for x in o.files.content(cb.output_file_id).text.splitlines()] if cb.output_file_id else []
    cancelled = [json.loads(x) for x in o.files.content(cb.error_file_id).text.splitlines()] if cb.error_file_id else []
    eq(len(done), rc.completed, "openai cancel: output lines = completed")
    eq(len(cancelled), rc.failed, "openai cancel: error lines = failed")
    check(all(x["response"] is None and x["error"]["code"] == "batch_cancelled" for x in cancelled),
          "openai cancel: unfinished lines are batch_cancelled errors")
    eq(len({x["custom_id"] for x in done} | {x["custom_id"] for x in cancelled}), BIG, "openai cancel: every custom_id once")

    # A few thousand lines completed (files written at creation), embeddings endpoint.
    emb = "".join(json.dumps({"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                              "body": {"model": "text-embedding-3-small", "input": f"text {i}", "dimensions": 16}}) + "\n" for i in range(BIG)).encode()
    ef = o.files.create(file=("emb.jsonl", io.BytesIO(emb)), purpose="batch")
    eb = o.batches.create(input_file_id=ef.id, endpoint="/v1/embeddings", completion_window="24h")
    eb = wait(lambda: o.batches.retrieve(eb.id), lambda x: x.status in OPENAI_TERMINAL, "openai embeddings batch")
    eq((eb.status, eb.request_counts.completed, eb.request_counts.failed), ("completed", BIG, 0), "openai embeddings batch: completed")
    el = [json.loads(x) for x in o.files.content(eb.output_file_id).text.splitlines()]
    eq(len(el), BIG, "openai embeddings batch: output lines")
    if el:
        strict(CreateEmbeddingResponse, json.dumps(el[0]["response"]["body"]), "openai embeddings batch line body")
        check(isinstance(el[0]["response"]["body"]["data"][0]["embedding"], list), "openai embeddings batch: float arrays in the file")

    # A /v1/responses batch: plain and forced-call lines, each body strictly a Response.
    from openai.types.responses import Response
    rlines = [{"custom_id": "resp-0", "method": "POST", "url": "/v1/responses", "body": {"model": "gpt-4o-mini", "input": "Say hello"}},
              {"custom_id": "resp-1", "method": "POST", "url": "/v1/responses",
               "body": {"model": "gpt-4o-mini", "input": "Weather?", "tools": [RESP_TOOL], "tool_choice": "required"}}]
    rf = o.files.create(file=("responses.jsonl", io.BytesIO("".join(json.dumps(x) + "\n" for x in rlines).encode())), purpose="batch")
    rb = o.batches.create(input_file_id=rf.id, endpoint="/v1/responses", completion_window="24h")
    rb = wait(lambda: o.batches.retrieve(rb.id), lambda x: x.status in OPENAI_TERMINAL, "openai responses batch")
    eq((rb.status, rb.request_counts.completed), ("completed", 2), "openai responses batch: completed")
    rl = {x["custom_id"]: x for x in (json.loads(t) for t in o.files.content(rb.output_file_id).text.splitlines() if t.strip())}
    for cid in ("resp-0", "resp-1"):
        if check(cid in rl, f"openai responses batch: line {cid}"):
            strict(Response, json.dumps(rl[cid]["response"]["body"]), f"openai responses batch line {cid}")
    if "resp-1" in rl:
        item = rl["resp-1"]["response"]["body"]["output"][0]
        check(item["type"] == "function_call" and json.loads(item["arguments"]).get("city"), "openai responses batch: forced function_call", item)

    # List with pagination (auto-paging across pages of 2).
    page = o.batches.list(limit=2)
    check(len(page.data) == 2 and page.has_more, "openai batches.list limit=2: has_more", (len(page.data), page.has_more))
    ids = [x.id for x in o.batches.list(limit=2)]
    check({b.id, fb.id, bb.id, eb.id, rb.id} <= set(ids), "openai batches.list auto-paging finds every batch")
    eq(len(ids), len(set(ids)), "openai batches.list: no duplicates across pages")
    eq(ids[0], rb.id, "openai batches.list: newest first")
    raw = o.batches.with_raw_response.list(limit=2)
    w = json.loads(txt(raw))
    eq((w["object"], w["first_id"], w["last_id"]), ("list", w["data"][0]["id"], w["data"][-1]["id"]), "openai batches.list: list envelope")

    # Expiry: on an emulator whose batches expire half-way.
    if EXPIRING:
        x = openai.OpenAI(api_key=KEY, base_url=EXPIRING + "/v1", max_retries=0)
        xf = x.files.create(file=("x.jsonl", io.BytesIO("".join(line(i) + "\n" for i in range(200)).encode())), purpose="batch")
        xb = x.batches.create(input_file_id=xf.id, endpoint="/v1/chat/completions", completion_window="24h")
        xb = wait(lambda: x.batches.retrieve(xb.id), lambda v: v.status in OPENAI_TERMINAL, "openai expiring batch")
        eq(xb.status, "expired", "openai expiry: expired")
        is_type(xb.expired_at, int, "openai expiry: expired_at")
        xl = [json.loads(v) for v in x.files.content(xb.error_file_id).text.splitlines()] if xb.error_file_id else []
        check(xl and all(v["response"] is None and v["error"]["code"] == "batch_expired" for v in xl),
              "openai expiry: unfinished lines are batch_expired errors", len(xl))
        eq(len(xl), xb.request_counts.failed, "openai expiry: error lines = failed")

    d = o.files.delete(f.id)
    strict(FileDeleted, d.model_dump_json(), "openai file deleted")
    eq((d.id, d.deleted, d.object), (f.id, True, "file"), "openai files.delete")
    expect_error(lambda: o.files.retrieve(f.id), openai.NotFoundError, "openai deleted file: NotFoundError", 404)


# ---------------------------------------------------------------------------------------------
# Anthropic
# ---------------------------------------------------------------------------------------------

CLAUDE = "claude-sonnet-4-5"
A_TOOL = {"name": "get_weather", "description": "Current weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def anthropic_checks():
    from anthropic.types import Message
    from anthropic.types.messages import DeletedMessageBatch, MessageBatch, MessageBatchIndividualResponse

    a = anthropic.Anthropic(api_key=KEY, base_url=BASE, max_retries=0)

    raw = a.messages.with_raw_response.create(model=CLAUDE, max_tokens=50, system="Be brief.",
                                              messages=[{"role": "user", "content": "Say hi"}])
    check(raw.headers.get("request-id", "").startswith("req_"), "anthropic: request-id header", raw.headers.get("request-id"))
    m = strict(Message, txt(raw), "anthropic message")
    if m:
        check(m.id.startswith("msg_"), "anthropic message: id")
        eq((m.type, m.role, m.stop_reason), ("message", "assistant", "end_turn"), "anthropic message: fields")
        check(m.content and m.content[0].type == "text" and m.content[0].text, "anthropic message: text block")
        check(m.usage.input_tokens > 0 and 0 < m.usage.output_tokens <= 50, "anthropic message: usage", m.usage)
        wire = json.loads(txt(raw))
        check("stop_sequence" in wire and wire["stop_sequence"] is None, "anthropic message: stop_sequence null")

    m = a.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "Tell me a long story " * 5}])
    eq(m.stop_reason, "max_tokens", "anthropic max_tokens: stop_reason")
    eq(m.usage.output_tokens, 5, "anthropic max_tokens: output_tokens")

    # Tools.
    m = a.messages.create(model=CLAUDE, max_tokens=100, tools=[A_TOOL], tool_choice={"type": "any"},
                          messages=[{"role": "user", "content": "Weather in Paris?"}])
    eq(m.stop_reason, "tool_use", "anthropic tools any: stop_reason")
    uses = [c for c in m.content if c.type == "tool_use"]
    if check(len(uses) == 1, "anthropic tools any: one tool_use block"):
        u = uses[0]
        check(u.id.startswith("toolu_") and u.name == "get_weather" and isinstance(u.input, dict) and isinstance(u.input.get("city"), str),
              "anthropic tool_use: id, name, input", u)
        m2 = a.messages.create(model=CLAUDE, max_tokens=100, tools=[A_TOOL], messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [u.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "18C, sunny"}]}])
        check(m2.stop_reason == "end_turn" and m2.content[0].type == "text", "anthropic tool_result: answered with text")
    m = a.messages.create(model=CLAUDE, max_tokens=100, tools=[A_TOOL], tool_choice={"type": "tool", "name": "get_weather"},
                          messages=[{"role": "user", "content": "Anything"}])
    check(any(c.type == "tool_use" and c.name == "get_weather" for c in m.content), "anthropic tool_choice tool: that tool")
    m = a.messages.create(model=CLAUDE, max_tokens=100, tools=[A_TOOL], tool_choice={"type": "none"},
                          messages=[{"role": "user", "content": "Weather?"}])
    check(all(c.type != "tool_use" for c in m.content), "anthropic tool_choice none: no tool_use")

    # Prompt caching: a cache_control system block is written once, then read.
    system = [{"type": "text", "text": "You are a meticulous assistant. " * 400 + str(time.time()),
               "cache_control": {"type": "ephemeral"}}]
    first = a.messages.create(model=CLAUDE, max_tokens=20, system=system, messages=[{"role": "user", "content": "One"}])
    second = a.messages.create(model=CLAUDE, max_tokens=20, system=system, messages=[{"role": "user", "content": "Two"}])
    u1, u2 = first.usage, second.usage
    for u in (u1, u2):
        is_type(u.cache_creation_input_tokens, int, "anthropic cache: cache_creation_input_tokens is an int")
        is_type(u.cache_read_input_tokens, int, "anthropic cache: cache_read_input_tokens is an int")
    check(u1.cache_creation_input_tokens > 1000 and u1.cache_read_input_tokens == 0, "anthropic cache: first call writes", u1)
    check(u2.cache_read_input_tokens == u1.cache_creation_input_tokens and u2.cache_creation_input_tokens == 0,
          "anthropic cache: second call reads what the first wrote", u2)
    check(u2.input_tokens < u1.cache_creation_input_tokens, "anthropic cache: input_tokens excludes cached tokens", u2)
    if u1.cache_creation is not None:
        eq(u1.cache_creation.ephemeral_5m_input_tokens + u1.cache_creation.ephemeral_1h_input_tokens,
           u1.cache_creation_input_tokens, "anthropic cache: cache_creation breakdown sums")

    # Extended thinking: a signed thinking block first, plain and streamed.
    m = a.messages.create(model=CLAUDE, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                          messages=[{"role": "user", "content": "What is 2+2?"}])
    check([c.type for c in m.content] == ["thinking", "text"] and m.content[0].thinking and m.content[0].signature,
          "anthropic thinking: thinking block (with signature) then text", [c.type for c in m.content])
    with a.messages.stream(model=CLAUDE, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                           messages=[{"role": "user", "content": "What is 2+2?"}]) as st:
        kinds = {ev.delta.type for ev in st if ev.type == "content_block_delta"}
        final = st.get_final_message()
    check({"thinking_delta", "signature_delta", "text_delta"} <= kinds, "anthropic thinking stream: thinking/signature/text deltas", kinds)
    check(final.content[0].type == "thinking" and final.content[0].thinking == m.content[0].thinking
          and final.content[0].signature == m.content[0].signature, "anthropic thinking stream: assembled block = plain block")

    # Streaming.
    with a.messages.stream(model=CLAUDE, max_tokens=60, messages=[{"role": "user", "content": "hi there"}]) as st:
        events = [ev.type for ev in st]
        final = st.get_final_message()
    eq(events[0], "message_start", "anthropic stream: message_start first")
    check("content_block_start" in events and "content_block_delta" in events and "content_block_stop" in events,
          "anthropic stream: content block events", events[:8])
    check(events[-1] == "message_stop" and "message_delta" in events, "anthropic stream: message_delta then message_stop")
    check(final.content[0].text and final.stop_reason == "end_turn" and final.usage.output_tokens > 0, "anthropic stream: final message")
    with a.messages.stream(model=CLAUDE, max_tokens=100, tools=[A_TOOL], tool_choice={"type": "any"},
                           messages=[{"role": "user", "content": "Weather?"}]) as st:
        final = st.get_final_message()
    check(final.stop_reason == "tool_use" and any(c.type == "tool_use" and isinstance(c.input, dict) and c.input for c in final.content),
          "anthropic stream tool_use: input assembled from input_json_delta")
    raw_events = list(a.messages.create(model=CLAUDE, max_tokens=20, stream=True, messages=[{"role": "user", "content": "x"}]))
    ms = raw_events[0]
    check(ms.type == "message_start" and ms.message.usage.input_tokens > 0, "anthropic raw stream: message_start usage")
    md = [e for e in raw_events if e.type == "message_delta"]
    check(md and md[0].usage.output_tokens > 0 and md[0].delta.stop_reason == "end_turn", "anthropic raw stream: message_delta usage")

    # Token counting and models.
    from anthropic.types import MessageTokensCount, ModelInfo
    counted = strict(MessageTokensCount, txt(a.messages.with_raw_response.count_tokens(
        model=CLAUDE, tools=[A_TOOL], messages=[{"role": "user", "content": "Weather in Paris?"}])), "anthropic count_tokens")
    sent = a.messages.create(model=CLAUDE, max_tokens=20, tools=[A_TOOL], messages=[{"role": "user", "content": "Weather in Paris?"}])
    check(counted is not None and counted.input_tokens == sent.usage.input_tokens, "anthropic count_tokens = usage.input_tokens",
          (counted, sent.usage.input_tokens))
    models = list(a.models.list())
    check(len(models) > 0 and all(m.type == "model" for m in models), "anthropic models.list")
    # Paging: limit, has_more, first_id/last_id, after_id (auto-paging), before_id.
    ids = [m.id for m in models]
    created = [m.created_at for m in models]
    eq(created, sorted(created, reverse=True), "anthropic models.list: newest first")
    page = a.models.list(limit=2)
    eq([m.id for m in page.data], ids[:2], "anthropic models.list limit=2: first two")
    eq((page.has_more, page.first_id, page.last_id), (len(ids) > 2, ids[0], ids[1]), "anthropic models page: has_more, first_id, last_id")
    paged = [m.id for m in a.models.list(limit=2)]
    eq(paged, ids, "anthropic models.list limit=2 auto-paging (after_id): every model once, in order")
    if len(ids) >= 3:
        page = a.models.list(limit=1, before_id=ids[2])
        eq(([m.id for m in page.data], page.has_more), ([ids[1]], True), "anthropic models.list before_id: the page just newer")
        page = a.models.list(after_id=ids[-2])
        eq(([m.id for m in page.data], page.has_more), ([ids[-1]], False), "anthropic models.list after_id: the oldest, no more")
    raw = json.loads(txt(a.models.with_raw_response.list(limit=2)))
    eq(sorted(raw), ["data", "first_id", "has_more", "last_id"], "anthropic models page: keys")
    for item in raw["data"]:
        strict(ModelInfo, json.dumps(item), "anthropic models page item")
    expect_error(lambda: a.models.list(limit=0), anthropic.BadRequestError, "anthropic models.list limit=0: 400", 400)
    strict(ModelInfo, txt(a.models.with_raw_response.retrieve(CLAUDE)), "anthropic model")

    # Errors.
    bad = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=BASE, max_retries=0)
    err = expect_error(lambda: bad.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}]),
                       anthropic.AuthenticationError, "anthropic bad key: AuthenticationError", 401)
    if err is not None:
        check(isinstance(err.body, dict) and err.body.get("type") == "error" and err.body["error"]["type"] == "authentication_error",
              "anthropic 401: error envelope", err.body)
    expect_error(lambda: a.messages.batches.retrieve("msgbatch_01doesnotexist0000000000"), anthropic.NotFoundError,
                 "anthropic unknown batch: NotFoundError", 404)
    expect_error(lambda: a.messages.create(model=CLAUDE, max_tokens=0, messages=[{"role": "user", "content": "x"}]),
                 anthropic.BadRequestError, "anthropic max_tokens 0: BadRequestError", 400)

    # Batch: create -> retrieve -> results (succeeded and errored).
    def req(i, **params):
        p = {"model": CLAUDE, "max_tokens": 30, "messages": [{"role": "user", "content": f"question {i}"}]}
        p.update(params)
        return {"custom_id": f"q-{i}", "params": p}

    raw = a.messages.batches.with_raw_response.create(requests=[
        req(0), req(1, max_tokens=0), req(2, tools=[A_TOOL], tool_choice={"type": "any"}),
        req(3, system=system)])
    b = strict(MessageBatch, txt(raw), "anthropic batch (create)")
    if b is None:
        return
    wire = json.loads(txt(raw))
    eq(set(wire), {"id", "type", "processing_status", "request_counts", "created_at", "expires_at", "ended_at",
                   "cancel_initiated_at", "archived_at", "results_url"}, "anthropic batch: keys (nulls explicit)")
    check(b.id.startswith("msgbatch_"), "anthropic batch: id")
    eq(b.processing_status, "in_progress", "anthropic batch create: in_progress")
    eq((b.request_counts.processing, b.request_counts.succeeded), (4, 0), "anthropic batch create: all processing")
    eq(b.expires_at - b.created_at, __import__("datetime").timedelta(hours=24), "anthropic batch: expires_at = created_at + 24 h")
    check(b.created_at.tzinfo is not None and len(wire["created_at"].split(".")[-1]) == 7 and wire["created_at"].endswith("Z"),
          "anthropic batch: RFC 3339, 6 fraction digits, Z", wire["created_at"])
    expect_error(lambda: list(a.messages.batches.results(b.id)), anthropic.AnthropicError, "anthropic results before the end: refused (no results_url)")
    expect_error(lambda: a.messages.batches.delete(b.id), anthropic.BadRequestError, "anthropic delete while in progress: BadRequestError", 400)
    b = wait(lambda: a.messages.batches.retrieve(b.id), lambda x: x.processing_status == "ended", "anthropic batch")
    raw = a.messages.batches.with_raw_response.retrieve(b.id)
    b = strict(MessageBatch, txt(raw), "anthropic batch (ended)")
    rc = b.request_counts
    eq((rc.processing, rc.succeeded, rc.errored, rc.canceled, rc.expired), (0, 3, 1, 0, 0), "anthropic batch ended: counts")
    check(isinstance(b.ended_at, datetime) and b.ended_at >= b.created_at, "anthropic batch: ended_at")
    eq(b.results_url, f"{BASE}/v1/messages/batches/{b.id}/results", "anthropic batch: results_url points at the emulator")
    results = list(a.messages.batches.results(b.id))
    eq(sorted(r.custom_id for r in results), ["q-0", "q-1", "q-2", "q-3"], "anthropic results: one per custom_id")
    by = {r.custom_id: r.result for r in results}
    eq({k: v.type for k, v in by.items()}, {"q-0": "succeeded", "q-1": "errored", "q-2": "succeeded", "q-3": "succeeded"},
       "anthropic results: types")
    if by.get("q-1") is not None and by["q-1"].type == "errored":
        e = by["q-1"].error
        eq((e.type, e.error.type), ("error", "invalid_request_error"), "anthropic errored: error.error.type")
    if by.get("q-2") is not None and by["q-2"].type == "succeeded":
        eq(by["q-2"].message.stop_reason, "tool_use", "anthropic batch: tool_use in a result")
        eq(by["q-2"].message.usage.service_tier, "batch", "anthropic batch: usage.service_tier batch")
    # The raw JSONL validates line by line.
    for ln in txt(a.messages.batches.with_raw_response.results(b.id)).splitlines():
        if ln.strip():
            strict(MessageBatchIndividualResponse, ln, "anthropic result line")

    # A few thousand requests, cancelled mid-way.
    big = a.messages.batches.create(requests=[req(i) for i in range(BIG)])
    time.sleep(0.6)
    c = a.messages.batches.cancel(big.id)
    check(c.processing_status in ("canceling", "ended") and isinstance(c.cancel_initiated_at, datetime),
          "anthropic cancel: canceling with cancel_initiated_at", c.processing_status)
    if c.processing_status == "canceling":
        eq(c.request_counts.processing, BIG, "anthropic canceling: counts not published yet")
    c = wait(lambda: a.messages.batches.retrieve(big.id), lambda x: x.processing_status == "ended", "anthropic cancelled batch")
    rc = c.request_counts
    check(rc.processing == 0 and rc.succeeded + rc.canceled == BIG and rc.canceled > 0 and rc.succeeded > 0,
          "anthropic cancel: succeeded + canceled = total", rc)
    results = list(a.messages.batches.results(big.id))
    types_ = [r.result.type for r in results]
    eq((types_.count("succeeded"), types_.count("canceled"), len({r.custom_id for r in results})),
       (rc.succeeded, rc.canceled, BIG), "anthropic cancel: results match counts")
    expect_error(lambda: a.messages.batches.cancel(big.id), anthropic.BadRequestError, "anthropic cancel of an ended batch: BadRequestError", 400)

    # List: newest first, paging.
    page = a.messages.batches.list(limit=1)
    check(len(page.data) == 1 and page.has_more and page.first_id == page.data[0].id == big.id, "anthropic list limit=1", page)
    ids = [x.id for x in a.messages.batches.list(limit=1)]
    check({b.id, big.id} <= set(ids) and len(ids) == len(set(ids)), "anthropic list auto-paging (after_id)")
    raw = a.messages.batches.with_raw_response.list(limit=2)
    w = json.loads(txt(raw))
    eq(set(w), {"data", "has_more", "first_id", "last_id"}, "anthropic list: envelope keys")

    # Delete.
    d = a.messages.batches.delete(b.id)
    strict(DeletedMessageBatch, d.model_dump_json(), "anthropic deleted batch")
    eq((d.id, d.type), (b.id, "message_batch_deleted"), "anthropic delete")
    expect_error(lambda: a.messages.batches.retrieve(b.id), anthropic.NotFoundError, "anthropic deleted batch: NotFoundError", 404)

    # Expiry: on an emulator whose batches expire half-way.
    if EXPIRING:
        x = anthropic.Anthropic(api_key=KEY, base_url=EXPIRING, max_retries=0)
        eb = x.messages.batches.create(requests=[req(i) for i in range(200)])
        eb = wait(lambda: x.messages.batches.retrieve(eb.id), lambda v: v.processing_status == "ended", "anthropic expiring batch")
        rc = eb.request_counts
        check(rc.expired > 0 and rc.succeeded + rc.expired == 200, "anthropic expiry: expired counts", rc)
        eq(eb.ended_at, eb.expires_at, "anthropic expiry: ended_at = expires_at")
        rs = [r.result.type for r in x.messages.batches.results(eb.id)]
        eq(rs.count("expired"), rc.expired, "anthropic expiry: expired results")


# ---------------------------------------------------------------------------------------------
# Gemini
# ---------------------------------------------------------------------------------------------

GEMINI = "gemini-2.5-flash"
G_TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def gclient(key=KEY, base=BASE):
    return genai.Client(api_key=key, http_options=gtypes.HttpOptions(base_url=base))


def graw(path, key=KEY, base=BASE, method="GET"):
    """The raw JSON of one Gemini call (for wire details the SDK's BatchJob does not carry)."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{base}/{path}", method=method, headers={"x-goog-api-key": key})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def gemini_checks():
    c = gclient()
    weather = gtypes.FunctionDeclaration(name="get_weather", description="Current weather",
                                         parameters=gtypes.Schema(type="OBJECT", properties={"city": gtypes.Schema(type="STRING")}, required=["city"]))

    r = c.models.generate_content(model=GEMINI, contents="Say hello",
                                  config=gtypes.GenerateContentConfig(max_output_tokens=30, system_instruction="Be brief."))
    check(isinstance(r.text, str) and r.text, "gemini generate: text")
    eq(r.candidates[0].finish_reason, gtypes.FinishReason.STOP, "gemini generate: finish_reason STOP (enum)")
    eq(r.candidates[0].content.role, "model", "gemini generate: role model")
    u = r.usage_metadata
    for name in ("prompt_token_count", "candidates_token_count", "total_token_count"):
        is_type(getattr(u, name), int, f"gemini usage: {name}")
    check(u.total_token_count >= u.prompt_token_count + u.candidates_token_count, "gemini usage: total", u)
    check(u.prompt_tokens_details and u.prompt_tokens_details[0].modality == gtypes.MediaModality.TEXT, "gemini usage: promptTokensDetails")
    check(isinstance(r.model_version, str) and isinstance(r.response_id, str), "gemini generate: modelVersion and responseId")
    r = c.models.generate_content(model=GEMINI, contents="Tell me a long story", config={"max_output_tokens": 3})
    eq(r.candidates[0].finish_reason, gtypes.FinishReason.MAX_TOKENS, "gemini max tokens: MAX_TOKENS")

    # Function calling.
    r = c.models.generate_content(model=GEMINI, contents="Weather in Paris?", config=gtypes.GenerateContentConfig(
        tools=[gtypes.Tool(function_declarations=[weather])],
        tool_config=gtypes.ToolConfig(function_calling_config=gtypes.FunctionCallingConfig(mode="ANY")),
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True)))
    fc = r.function_calls or []
    if check(len(fc) == 1, "gemini function calling ANY: one call"):
        eq(fc[0].name, "get_weather", "gemini function call: name")
        check(isinstance(fc[0].args, dict) and isinstance(fc[0].args.get("city"), str), "gemini function call: args", fc[0].args)
        r2 = c.models.generate_content(model=GEMINI, contents=[
            gtypes.Content(role="user", parts=[gtypes.Part(text="Weather in Paris?")]),
            gtypes.Content(role="model", parts=[gtypes.Part(function_call=fc[0])]),
            gtypes.Content(role="user", parts=[gtypes.Part.from_function_response(name="get_weather", response={"temp": "18C"})])],
            config=gtypes.GenerateContentConfig(tools=[gtypes.Tool(function_declarations=[weather])]))
        check(r2.text and not r2.function_calls, "gemini function response: answered with text")
    r = c.models.generate_content(model=GEMINI, contents="Weather?", config=gtypes.GenerateContentConfig(
        tools=[gtypes.Tool(function_declarations=[weather])],
        tool_config=gtypes.ToolConfig(function_calling_config=gtypes.FunctionCallingConfig(mode="NONE"))))
    check(not r.function_calls and r.text, "gemini function calling NONE: text")

    # Thinking: includeThoughts -> a thought part first, thoughtsTokenCount in the total; budget 0 -> none.
    plain = c.models.generate_content(model=GEMINI, contents="What is 2+2?")
    r = c.models.generate_content(model=GEMINI, contents="What is 2+2?", config=gtypes.GenerateContentConfig(
        thinking_config=gtypes.ThinkingConfig(include_thoughts=True)))
    parts = r.candidates[0].content.parts or []
    if check(len(parts) == 2, "gemini thinking include_thoughts: two parts", parts):
        check(parts[0].thought is True and parts[0].text, "gemini thinking: thought part first", parts[0])
        check(not parts[1].thought and parts[1].text == plain.text, "gemini thinking: then the answer", parts[1])
    eq(r.text, plain.text, "gemini thinking: response.text leaves the thought out")
    u = r.usage_metadata
    is_type(u.thoughts_token_count, int, "gemini thinking: thoughts_token_count")
    check((u.thoughts_token_count or 0) > 0 and u.total_token_count == u.prompt_token_count + u.candidates_token_count + u.thoughts_token_count,
          "gemini thinking: total = prompt + candidates + thoughts", u)
    eq(u.candidates_token_count, plain.usage_metadata.candidates_token_count, "gemini thinking: candidates tokens unchanged")
    r = c.models.generate_content(model=GEMINI, contents="What is 2+2?", config=gtypes.GenerateContentConfig(
        thinking_config=gtypes.ThinkingConfig(thinking_budget=0, include_thoughts=True)))
    check(len(r.candidates[0].content.parts) == 1 and not r.candidates[0].content.parts[0].thought
          and r.usage_metadata.thoughts_token_count is None, "gemini thinking_budget=0: no thought, no thought tokens", r)
    r = c.models.generate_content(model=GEMINI, contents="What is 2+2?", config=gtypes.GenerateContentConfig(
        thinking_config=gtypes.ThinkingConfig(thinking_budget=4)))
    check(len(r.candidates[0].content.parts) == 1 and r.usage_metadata.thoughts_token_count == 4,
          "gemini thinking_budget=4 without include_thoughts: counted (capped), not returned", r.usage_metadata)
    chunks = list(c.models.generate_content_stream(model=GEMINI, contents="What is 2+2?", config=gtypes.GenerateContentConfig(
        thinking_config=gtypes.ThinkingConfig(include_thoughts=True))))
    flags = [bool(ch.candidates[0].content.parts[0].thought) for ch in chunks]
    check(flags and flags[0] and not flags[-1] and flags == sorted(flags, reverse=True), "gemini thinking stream: thought chunks first", flags)
    answer = "".join(ch.candidates[0].content.parts[0].text for ch in chunks if not ch.candidates[0].content.parts[0].thought)
    eq(answer, plain.text, "gemini thinking stream: the answer after the thoughts")
    check(chunks[-1].usage_metadata and chunks[-1].usage_metadata.thoughts_token_count, "gemini thinking stream: thoughts tokens on the last chunk")

    # Streaming.
    chunks = list(c.models.generate_content_stream(model=GEMINI, contents="hi there"))
    check(len(chunks) >= 1 and "".join(ch.text or "" for ch in chunks), "gemini stream: text")
    check(chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.total_token_count > 0, "gemini stream: usage on the last chunk")
    eq(chunks[-1].candidates[0].finish_reason, gtypes.FinishReason.STOP, "gemini stream: finish_reason on the last chunk")

    # Embeddings.
    e = c.models.embed_content(model="gemini-embedding-001", contents="hello")
    check(len(e.embeddings) == 1 and e.embeddings[0].values and all(isinstance(v, float) for v in e.embeddings[0].values),
          "gemini embed_content: float values")
    e = c.models.embed_content(model="gemini-embedding-001", contents=["a", "b", "c"],
                               config=gtypes.EmbedContentConfig(output_dimensionality=32, task_type="RETRIEVAL_DOCUMENT"))
    check(len(e.embeddings) == 3 and all(len(x.values) == 32 for x in e.embeddings), "gemini embed_content (batchEmbedContents): 3 x 32")

    # Token counting and models.
    ct = c.models.count_tokens(model=GEMINI, contents="Say hello")
    gen = c.models.generate_content(model=GEMINI, contents="Say hello")
    check(isinstance(ct.total_tokens, int) and ct.total_tokens == gen.usage_metadata.prompt_token_count,
          "gemini count_tokens = promptTokenCount", (ct.total_tokens, gen.usage_metadata.prompt_token_count))
    ms = list(c.models.list(config={"page_size": 2}))
    check(len(ms) > 2 and all(m.name.startswith("models/") for m in ms), "gemini models.list (paged)", [m.name for m in ms])
    eq(c.models.get(model=GEMINI).name, f"models/{GEMINI}", "gemini models.get")

    # Errors. The real service answers a bad key with 400 INVALID_ARGUMENT (API_KEY_INVALID).
    bad = gclient(key="AIza-wrong")
    err = expect_error(lambda: bad.models.generate_content(model=GEMINI, contents="x"), genai_errors.ClientError, "gemini bad key: ClientError")
    if err is not None:
        eq((err.code, err.status), (400, "INVALID_ARGUMENT"), "gemini bad key: 400 INVALID_ARGUMENT, as the real service")
        check("API_KEY_INVALID" in json.dumps(err.details), "gemini bad key: ErrorInfo reason API_KEY_INVALID")
    err = expect_error(lambda: c.batches.get(name="batches/doesnotexist123"), genai_errors.ClientError, "gemini unknown batch: ClientError", 404)
    if err is not None:
        eq(err.status, "NOT_FOUND", "gemini 404: status NOT_FOUND")
    expect_error(lambda: c.models.generate_content(model=GEMINI, contents=[]), (genai_errors.ClientError, ValueError),
                 "gemini empty contents: refused")

    # Inline batch: create -> get -> inlined responses (one invalid item).
    src = [
        {"contents": [{"role": "user", "parts": [{"text": "Describe photosynthesis."}]}], "metadata": {"key": "r-0"}},
        {"contents": [{"role": "user", "parts": [{"text": "Weather?"}]}],
         "config": {"tools": [{"function_declarations": [weather.model_dump(exclude_none=True)]}],
                    "tool_config": {"function_calling_config": {"mode": "ANY"}}}, "metadata": {"key": "r-1"}},
        {"contents": [{"role": "user", "parts": []}], "metadata": {"key": "r-2"}},
        {"contents": [{"role": "user", "parts": [{"text": "Short answer"}]}], "config": {"max_output_tokens": 5}},
    ]
    job = c.batches.create(model=GEMINI, src=src, config={"display_name": "crosscheck-inline"})
    check(job.name.startswith("batches/"), "gemini batch: name batches/", job.name)
    eq(job.state, gtypes.JobState.JOB_STATE_PENDING, "gemini batch create: PENDING")
    eq(job.display_name, "crosscheck-inline", "gemini batch: display_name")
    check(isinstance(job.create_time, datetime), "gemini batch: create_time parses")
    eq(job.model, f"models/{GEMINI}", "gemini batch: model")
    job = wait(lambda: c.batches.get(name=job.name), lambda j: j.state.name in G_TERMINAL, "gemini inline batch")
    eq(job.state, gtypes.JobState.JOB_STATE_SUCCEEDED, "gemini inline batch: SUCCEEDED")
    check(isinstance(job.end_time, datetime) and job.end_time >= job.create_time, "gemini batch: end_time")
    check(job.done, "gemini batch: done")
    resp = (job.dest.inlined_responses if job.dest else None) or []
    if check(len(resp) == 4, "gemini inline batch: 4 inlined responses", len(resp)):
        eq([x.metadata.get("key") if x.metadata else None for x in resp], ["r-0", "r-1", "r-2", None], "gemini inline: input order, metadata echoed")
        check(resp[0].response and resp[0].response.text and resp[0].error is None, "gemini inline: response")
        check(resp[1].response and resp[1].response.function_calls and resp[1].response.function_calls[0].name == "get_weather",
              "gemini inline: function call in a batch")
        check(resp[2].error is not None and resp[2].response is None and isinstance(resp[2].error.code, int),
              "gemini inline: per-item error (google.rpc.Status)", resp[2].error)
        check(resp[3].response and resp[3].response.usage_metadata.candidates_token_count <= 5, "gemini inline: per-request config")
    code, op = graw(f"v1beta/{job.name}")
    eq(code, 200, "gemini raw get: 200")
    md = op.get("metadata", {})
    eq(md.get("state"), "BATCH_STATE_SUCCEEDED", "gemini wire: metadata.state BATCH_STATE_*")
    eq(md.get("batchStats"), {"requestCount": "4", "successfulRequestCount": "3", "failedRequestCount": "1"},
       "gemini wire: batchStats int64 strings, zeros omitted")
    check(op.get("done") is True and "inlinedResponses" in op.get("response", {}) and op["response"].get("@type", "").endswith("GenerateContentBatchOutput"),
          "gemini wire: done and response (@type …Output)")

    # File batch: upload JSONL (> 8 MiB: several upload chunks) -> create -> get -> download.
    pad = "x" * 3000
    lines = [json.dumps({"key": f"k-{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"question {i} {pad}"}]}]}})
             for i in range(BIG)]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
        path = fh.name
    size = os.path.getsize(path)
    check(size > 8 * 1024 * 1024, "gemini upload: input above one 8 MiB chunk", size)
    up = c.files.upload(file=path, config={"mime_type": "jsonl", "display_name": "crosscheck-input"})
    os.unlink(path)
    check(up.name.startswith("files/"), "gemini file: name", up.name)
    eq(up.size_bytes, size, "gemini file: size_bytes (int)")
    eq((up.state, up.source), (gtypes.FileState.ACTIVE, gtypes.FileSource.UPLOADED), "gemini file: state ACTIVE, source UPLOADED")
    check(isinstance(up.expiration_time, datetime) and isinstance(up.create_time, datetime), "gemini file: times parse")
    eq(up.display_name, "crosscheck-input", "gemini file: display_name")
    eq(c.files.get(name=up.name).name, up.name, "gemini files.get")
    check(any(f.name == up.name for f in c.files.list(config={"page_size": 5})), "gemini files.list (paged) finds it")
    fjob = c.batches.create(model=GEMINI, src=up.name, config={"display_name": "crosscheck-file"})
    eq(fjob.state, gtypes.JobState.JOB_STATE_PENDING, "gemini file batch create: PENDING")
    fjob = wait(lambda: c.batches.get(name=fjob.name), lambda j: j.state.name in G_TERMINAL, "gemini file batch")
    eq(fjob.state, gtypes.JobState.JOB_STATE_SUCCEEDED, "gemini file batch: SUCCEEDED")
    dest = fjob.dest.file_name if fjob.dest else None
    check(dest and dest.startswith("files/"), "gemini file batch: dest.file_name", dest)
    if dest:
        meta = c.files.get(name=dest)
        eq(meta.source, gtypes.FileSource.GENERATED, "gemini result file: GENERATED")
        check(meta.download_uri, "gemini result file: download_uri")
        data = c.files.download(file=dest)
        out = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
        eq([x["key"] for x in out], [f"k-{i}" for i in range(BIG)], "gemini result file: every key, input order")
        check(all("response" in x and "error" not in x for x in out), "gemini result file: responses")
        if out:
            gr = gtypes.GenerateContentResponse.model_validate(out[0]["response"])
            check(gr.text and gr.usage_metadata.total_token_count > 0, "gemini result line parses as GenerateContentResponse")
        data2 = c.files.download(file=meta)
        eq(len(data2), len(data), "gemini files.download(File) = download(name)")
    expect_error(lambda: c.files.download(file=up.name), (genai_errors.ClientError, ValueError), "gemini download of an uploaded file: refused")

    # Embedding batch (inline), experimental in the SDK.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ejob = c.batches.create_embeddings(model="gemini-embedding-001", src={"inlined_requests": {
            "contents": [{"parts": [{"text": "alpha"}]}, {"parts": [{"text": "beta"}]}], "config": {"output_dimensionality": 8}}})
    ejob = wait(lambda: c.batches.get(name=ejob.name), lambda j: j.state.name in G_TERMINAL, "gemini embeddings batch")
    eq(ejob.state, gtypes.JobState.JOB_STATE_SUCCEEDED, "gemini embeddings batch: SUCCEEDED")
    er = (ejob.dest.inlined_embed_content_responses if ejob.dest else None) or []
    if check(len(er) == 2, "gemini embeddings batch: 2 inlined embed responses", ejob.dest):
        check(all(x.response and len(x.response.embedding.values) == 8 for x in er), "gemini embeddings batch: 8 values each", er[0])

    # Thinking inside a batch request's config: the inlined response has the thought part and tokens.
    tjob = c.batches.create(model=GEMINI, src=[{"contents": [{"role": "user", "parts": [{"text": "What is 2+2?"}]}],
                                                "config": {"thinking_config": {"include_thoughts": True}}}])
    tjob = wait(lambda: c.batches.get(name=tjob.name), lambda j: j.state.name in G_TERMINAL, "gemini thinking batch")
    tr = (tjob.dest.inlined_responses if tjob.dest else None) or []
    if check(len(tr) == 1 and tr[0].response, "gemini thinking batch: one response", tjob.dest):
        tparts = tr[0].response.candidates[0].content.parts
        check(len(tparts) == 2 and tparts[0].thought and not tparts[1].thought and tr[0].response.usage_metadata.thoughts_token_count,
              "gemini thinking batch: thought part and thoughts_token_count", tr[0].response)

    # A large inline batch cancelled mid-way; list; delete.
    many = [{"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]} for i in range(BIG)]
    cj = c.batches.create(model=GEMINI, src=many)
    time.sleep(0.6)
    c.batches.cancel(name=cj.name)
    cj = wait(lambda: c.batches.get(name=cj.name), lambda j: j.state.name in G_TERMINAL, "gemini cancelled batch")
    eq(cj.state, gtypes.JobState.JOB_STATE_CANCELLED, "gemini cancel: CANCELLED")
    code, op = graw(f"v1beta/{cj.name}")
    stats = op.get("metadata", {}).get("batchStats", {})
    check(stats.get("requestCount") == str(BIG) and int(stats.get("successfulRequestCount", "0")) > 0
          and int(stats.get("successfulRequestCount", "0")) + int(stats.get("failedRequestCount", "0")) == BIG,
          "gemini cancel: batchStats", stats)
    check(op.get("done") is True, "gemini cancel: done")
    pager = c.batches.list(config={"page_size": 2})
    names = [j.name for j in pager]
    check({job.name, fjob.name, cj.name} <= set(names) and len(names) == len(set(names)), "gemini batches.list paged")
    eq(names[0], cj.name, "gemini list: newest first")
    code, listing = graw("v1beta/batches?pageSize=2")
    check("operations" in listing and "nextPageToken" in listing
          and all("inlinedResponses" not in json.dumps(op_) for op_ in listing["operations"]),
          "gemini wire list: operations + nextPageToken, no inline results")
    c.batches.delete(name=cj.name)
    expect_error(lambda: c.batches.get(name=cj.name), genai_errors.ClientError, "gemini deleted batch: 404", 404)
    c.files.delete(name=up.name)
    expect_error(lambda: c.files.get(name=up.name), genai_errors.ClientError, "gemini deleted file: 404", 404)

    # The v1 paths (the SDK's default version in late 2026) answer the same.
    c1 = genai.Client(api_key=KEY, http_options=gtypes.HttpOptions(base_url=BASE, api_version="v1"))
    eq(c1.batches.get(name=job.name).state, gtypes.JobState.JOB_STATE_SUCCEEDED, "gemini v1: batches.get")
    check(c1.models.generate_content(model=GEMINI, contents="hi").text, "gemini v1: generate_content")

    if EXPIRING:
        x = gclient(base=EXPIRING)
        ej = x.batches.create(model=GEMINI, src=many[:200])
        ej = wait(lambda: x.batches.get(name=ej.name), lambda j: j.state.name in G_TERMINAL, "gemini expiring batch")
        eq(ej.state, gtypes.JobState.JOB_STATE_EXPIRED, "gemini expiry: EXPIRED")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="openai,anthropic,gemini")
    args = p.parse_args()
    for name in args.only.split(","):
        fn = {"openai": openai_checks, "anthropic": anthropic_checks, "gemini": gemini_checks}[name.strip()]
        before = (passed, len(failures))
        print(f"== {name} against {BASE}")
        t = time.monotonic()
        try:
            fn()
        except Exception:
            failures.append(f"FAIL {name}: exception\n{traceback.format_exc()}")
            print("  " + failures[-1])
        print(f"   {passed - before[0]} checks passed, {len(failures) - before[1]} failed ({time.monotonic() - t:.1f} s)")
    print(f"TOTAL: {passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
