"""`edgevlm serve` end to end: a real server on 127.0.0.1 (subprocess), the official openai client, a
tiny exported MiniCPM-V 2.6 bundle. References are computed independently: `edgevlm run`, the
runtime in this process, and one prompt rendered over the whole conversation."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import edgevlm  # noqa: E402
from edgevlm.export.validate import test_image as make_image  # noqa: E402
from edgevlm.processing.prompt import IMAGE, build_prompt, chunk_count, layout_tokens  # noqa: E402
from edgevlm.runtime.images import grid_of, prepare_image  # noqa: E402
from edgevlm.serve.conversations import holds_exactly  # noqa: E402
from serve_helpers import data_url, image_message, metric, request, start_server  # noqa: E402

KEY = "test-key"
QUESTION = "What is in the picture?"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from edgevlm.families.tiny import make_tiny

    root = tmp_path_factory.mktemp("serve")
    ckpt = make_tiny("minicpmv-2.6", root / "ckpt")
    edgevlm.export(str(ckpt), str(root / "bundle"), format="onnx", progress=None)
    return root / "bundle"


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    srv = start_server(bundle, log, "--api-key", KEY, "--max-queue", "8", "--max-body-mb", "1", "--max-images", "3")
    yield srv
    srv.stop()
    assert "Traceback" not in srv.log(), srv.log()  # no request reached an unhandled error


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def vlm(bundle):
    """The same bundle in this process: the reference the server's answers are checked against."""
    return edgevlm.load(str(bundle), device="cpu")


def ask(client, messages, **options):
    return client.chat.completions.create(model="tiny", messages=messages, **{"temperature": 0, **options})


def scrape(server) -> str:
    status, body = request(server.port, "GET", "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200
    return body.decode()


def test_greedy_answer_equals_edgevlm_run(server, client, bundle, tmp_path):
    picture = make_image()
    path = tmp_path / "pic.png"
    picture.save(path)
    out = subprocess.run([sys.executable, "-m", "edgevlm.cli", "run", str(bundle), "--image", str(path), "--prompt",
                          QUESTION, "--max-tokens", "16", "--device", "cpu", "--json"],
                         capture_output=True, text=True, check=True)
    expected = json.loads(out.stdout)
    answer = ask(client, [image_message(picture, QUESTION)], max_tokens=16)
    assert answer.choices[0].message.content == expected["text"]
    assert answer.choices[0].finish_reason == "length" and answer.object == "chat.completion"
    assert answer.usage.prompt_tokens == expected["stats"]["prompt_tokens"]
    assert answer.usage.completion_tokens == len(expected["token_ids"]) == 16


def test_streamed_deltas_join_to_the_same_text(server, client):
    messages = [image_message(make_image(500, 300, seed=4), "Describe it.")]
    whole = ask(client, messages, max_tokens=20)
    chunks = list(ask(client, messages, max_tokens=20, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    # The wire format itself: data: lines ending in [DONE].
    status, raw = request(server.port, "POST", "/v1/chat/completions",
                          {"messages": messages, "max_tokens": 3, "stream": True},
                          headers={"Authorization": f"Bearer {KEY}"})
    events = [line for line in raw.decode().split("\n\n") if line]
    assert status == 200 and all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


def test_follow_up_question_reuses_the_conversation(server, client, vlm):
    picture = make_image(640, 480, seed=7)
    first_turn = [image_message(picture, QUESTION)]
    first = ask(client, first_turn, max_tokens=8)
    encoded = metric(scrape(server), "edgevlm_vision_cache_misses_total")
    history = first_turn + [{"role": "assistant", "content": first.choices[0].message.content},
                            {"role": "user", "content": "And what colour is it?"}]
    second = ask(client, history, max_tokens=8)
    # Everything of the first request stayed in the KV cache.
    pending = 1 if first.choices[0].finish_reason == "length" else 0  # a last sampled token is fed with the next turn
    held = first.usage.prompt_tokens + first.usage.completion_tokens - pending
    assert second.usage.prompt_tokens_details.cached_tokens == held
    assert second.usage.prompt_tokens - second.usage.prompt_tokens_details.cached_tokens < 30
    timings = second.model_extra["timings"]
    assert timings["images_encoded"] == 0 and timings["replayed_turns"] == 0 and timings["vision_ms"] == 0
    assert metric(scrape(server), "edgevlm_vision_cache_misses_total") == encoded  # nothing re-encoded
    chat = vlm.chat()  # reference: the same two turns as one in-process conversation
    assert chat.send(QUESTION, [picture], max_new_tokens=8).text == first.choices[0].message.content
    assert chat.send("And what colour is it?", max_new_tokens=8).text == second.choices[0].message.content


def _whole_conversation_greedy(vlm, messages, picture, n_tokens) -> str:
    """Reference for a rebuilt conversation: the whole chat rendered as ONE prompt, fed from scratch."""
    grid = grid_of(picture, vlm.processor)
    prompt = build_prompt(messages, [grid], vlm.layout, vlm.template)
    layout = layout_tokens(vlm.tokenizer, prompt, vlm.layout, [chunk_count(grid)])
    features = vlm.backend.encode_images(prepare_image(picture, vlm.processor).inputs)  # [chunks, tokens, D]
    vlm.backend.rewind(0)
    vlm._owner = None  # the backend's KV cache no longer holds any Chat
    logits = vlm.backend.forward(layout.input_ids, features.reshape(-1, features.shape[-1]), None)
    tokens = []
    for _ in range(n_tokens):
        logits[vlm.suppress_ids] = -np.inf
        logits[vlm.vocab_limit:] = -np.inf
        tokens.append(int(logits.argmax()))
        logits = vlm.backend.forward(np.array([tokens[-1]]))
    return vlm.tokenizer.decode(tokens)


def test_an_assistant_message_we_did_not_write_is_rebuilt_not_continued(server, client, vlm):
    picture = make_image(400, 400, seed=9)
    first_turn = [image_message(picture, QUESTION)]
    first = ask(client, first_turn, max_tokens=6)
    edited = first_turn + [{"role": "assistant", "content": "A chessboard in the evening."},
                           {"role": "user", "content": "Are you sure?"}]
    second = ask(client, edited, max_tokens=10)
    assert second.usage.prompt_tokens_details.cached_tokens == 0
    timings = second.model_extra["timings"]
    assert timings["replayed_turns"] == 1 and timings["images_encoded"] == 0 and timings["images_from_cache"] == 1
    reference = [{"role": "user", "content": [IMAGE, QUESTION]},
                 {"role": "assistant", "content": "A chessboard in the evening."},
                 {"role": "user", "content": "Are you sure?"}]
    assert second.choices[0].message.content == _whole_conversation_greedy(vlm, reference, picture, 10)


def test_eight_concurrent_clients_each_get_their_answer(server, client, vlm):
    """Eight two-turn conversations at once: their turns interleave on the one model."""
    jobs = [(f"Tell me about thing number {i}.", make_image(320, 240, seed=i) if i % 3 == 0 else None, i)
            for i in range(8)]
    options = dict(max_tokens=12, temperature=1.0, top_p=0.9)

    def one(job):
        text, picture, seed = job
        messages = [image_message(picture, text)] if picture is not None else [{"role": "user", "content": text}]
        first = ask(client, messages, seed=seed, **options).choices[0].message.content
        messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "Go on."}]
        second = ask(client, messages, seed=seed + 100, **options)
        return first, second.choices[0].message.content, second.model_extra["timings"]["replayed_turns"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, jobs))
    expected = []
    for text, picture, seed in jobs:  # the same conversations, one after the other, in this process
        images = [picture] if picture is not None else []
        chat = vlm.chat()
        first = chat.send(text, images, max_new_tokens=12, temperature=1.0, top_p=0.9, seed=seed)
        continued = holds_exactly(vlm, first)
        if not continued:  # tokens hidden from the text (tiny random models emit special tokens): rebuilt from it
            chat = vlm.chat()
            chat.add_exchange(text, images, first.text)
        second = chat.send("Go on.", max_new_tokens=12, temperature=1.0, top_p=0.9, seed=seed + 100)
        expected.append((first.text, second.text, 0 if continued else 1))
    assert answers == expected and len({a[:2] for a in answers}) == 8
    assert any(a[2] == 0 for a in answers)  # some conversations were continued while others ran in between


def test_a_client_leaving_mid_stream_frees_the_model(server, client):
    before = scrape(server)
    stream = ask(client, [{"role": "user", "content": "Write a long story."}], max_tokens=1500, stream=True)
    for _, _chunk in zip(range(3), stream):
        pass
    stream.close()  # the client goes away after a few tokens
    with pytest.raises(openai.APITimeoutError):  # and a client that stops waiting for a whole answer
        ask(client.with_options(timeout=0.5), [{"role": "user", "content": "Write a long poem."}], max_tokens=1500)
    quick = ask(client, [{"role": "user", "content": "Hi."}], max_tokens=2)  # answered after both were stopped
    assert quick.usage.completion_tokens == 2
    after = scrape(server)
    assert metric(after, "edgevlm_cancelled_total") == metric(before, "edgevlm_cancelled_total") + 2
    generated = metric(after, "edgevlm_completion_tokens_total") - metric(before, "edgevlm_completion_tokens_total")
    assert generated == 2  # the cancelled request is not counted as answered


def test_a_full_queue_answers_429_and_the_server_keeps_serving(server, client):
    statuses, lock, refused = [], threading.Lock(), threading.Event()

    def long_request():
        try:
            stream = ask(client, [{"role": "user", "content": "Count slowly."}], max_tokens=400, stream=True)
            next(iter(stream))  # headers are sent once the first token is out
            with lock:
                statuses.append(200)
            refused.wait(20)  # hold the model until the queue has overflowed
            stream.close()  # then leave: the model is freed for the next one
        except openai.RateLimitError as exc:
            with lock:
                statuses.append(exc.status_code)
            assert exc.body["code"] == "queue_full"
            refused.set()

    threads = [threading.Thread(target=long_request) for _ in range(12)]  # 1 running + 8 waiting, then full
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses.count(429) >= 1 and statuses.count(200) >= 1 and len(statuses) == 12
    assert ask(client, [{"role": "user", "content": "Still there?"}], max_tokens=2).usage.completion_tokens == 2


def test_models_health_and_metrics(server, client, bundle):
    assert [m.id for m in client.models.list()] == [bundle.name]
    assert request(server.port, "GET", "/health")[0] == 200  # no key needed
    text = scrape(server)
    for name in ("edgevlm_requests_total{status=\"200\"}", "edgevlm_time_to_first_token_seconds_bucket",
                 "edgevlm_time_per_output_token_seconds_count", "edgevlm_queue_depth",
                 "edgevlm_vision_cache_hits_total", "edgevlm_prefix_cache_hits_total", "process_resident_memory_bytes"):
        assert name in text
    assert metric(text, "edgevlm_prefix_cache_hits_total") >= 1


def truncated_png() -> str:
    """A PNG cut after its header: readable as a PNG, not decodable."""
    png = base64.b64decode(data_url(make_image(64, 64)).split(",", 1)[1])
    return "data:image/png;base64," + base64.b64encode(png[:200]).decode()


BAD_REQUESTS = [  # (what, body or raw bytes, status, words in the message)
    ("malformed JSON", b'{"messages": [', 400, "not valid JSON"),
    ("messages not an array", {"messages": "hi"}, 400, "'messages' must be"),
    ("a field of the wrong type", {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400,
     "'temperature' must be a number"),
    ("max_tokens out of range", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "at least 1"),
    ("an undecodable image", {"messages": [image_message("data:image/png;base64,aGVsbG8=", "hi")]}, 400,
     "not a readable image"),
    ("a truncated image", {"messages": [image_message(truncated_png(), "hi")]}, 400,
     "corrupt or truncated"),
    ("broken base64", {"messages": [image_message("data:image/png;base64,@@@", "hi")]}, 400, "not valid base64"),
    ("a remote image URL", {"messages": [image_message("https://example.com/cat.jpg", "hi")]}, 400,
     "does not fetch remote images"),
    ("a file URL on a server without --allow-file-urls", {"messages": [image_message("file:///etc/hostname", "hi")]},
     400, "--allow-file-urls"),
    ("too many images", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(make_image(32, 32, seed=s))}} for s in range(4)]}]},
     400, "more than 3 images"),
    ("a prompt over the context", {"messages": [{"role": "user", "content": "word " * 3000}]}, 400,
     "more than the context of 2048"),
    ("n > 1", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "'n' must be 1"),
    ("a pixel budget for a bundle of fixed tiling", {"messages": [{"role": "user", "content": "hi"}],
                                                     "max_pixels": 200704}, 400, "max_pixels applies to"),
    ("tools", {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, 400, "tool calling"),
    ("an unknown role", {"messages": [{"role": "robot", "content": "hi"}]}, 400, "unknown role"),
    ("ending on an assistant message", {"messages": [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "yo"}]}, 400, "last message"),
    ("a body over the limit", {"messages": [{"role": "user", "content": "x" * (3 << 19)}]}, 413, "--max-body-mb"),
]


@pytest.mark.parametrize("what,body,status,words", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_their_4xx(server, what, body, status, words):
    got, raw = request(server.port, "POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {KEY}"})
    error = json.loads(raw)["error"]
    assert got == status and words in error["message"], (what, got, error)
    assert set(error) == {"message", "type", "param", "code"} and "Traceback" not in raw.decode()


def test_api_key_routes_and_methods(server, client):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    assert request(server.port, "POST", "/v1/chat/completions", body)[0] == 401
    assert request(server.port, "GET", "/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
    status, raw = request(server.port, "GET", "/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert status == 404 and "no route" in json.loads(raw)["error"]["message"]
    assert request(server.port, "GET", "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"})[0] == 405
    status, raw = request(server.port, "POST", "/v1/chat/completions", {**body, "user": "u1", "vendor_extra": [1]},
                          {"Authorization": f"Bearer {KEY}"})
    assert status == 200 and json.loads(raw)["usage"]["completion_tokens"] == 1  # unknown fields are ignored


def test_the_load_script_runs_clean_against_the_server(server):
    from bench_serve import run_load

    rss_mb = lambda: metric(scrape(server), "process_resident_memory_bytes") / 2**20  # noqa: E731
    figures = run_load(server.base_url, rss_mb, clients=2, seconds=2, max_tokens=4, image_size=(320, 240), api_key=KEY)
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["requests"] >= 2 and figures["ttft_p50_ms"] > 0 and figures["rss_before_mb"] > 0


def test_file_urls_only_when_allowed(tmp_path):
    from edgevlm.serve.errors import ApiError
    from edgevlm.serve.image_urls import read_image_url

    path = tmp_path / "pic.png"
    make_image(64, 48).save(path)
    image = read_image_url(path.as_uri(), "image_url", allow_file_urls=True)
    assert image.data == path.read_bytes() and len(image.digest) == 64
    with pytest.raises(ApiError, match="--allow-file-urls"):
        read_image_url(path.as_uri(), "image_url", allow_file_urls=False)
    with pytest.raises(ApiError, match="cannot read"):
        read_image_url((tmp_path / "missing.png").as_uri(), "image_url", allow_file_urls=True)


def test_python_entry_point_refuses_a_missing_bundle_in_one_line(tmp_path):
    with pytest.raises(edgevlm.EdgeVLMError):
        edgevlm.serve(str(tmp_path / "no-bundle"), port=1)
