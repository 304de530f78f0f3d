"""`edgevlm serve` with a per-request pixel budget (``max_pixels`` / ``min_pixels``, a vendor field sent as
the openai client's ``extra_body``) on a tiny Qwen2-VL bundle: the server's answers against the runtime in
this process with the same budget, and the rule that a conversation continues from the server's cache only
under the budget its images were encoded with."""

from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import edgevlm  # noqa: E402
from edgevlm.export.validate import test_image as make_image  # noqa: E402
from serve_helpers import image_message, request, start_server  # noqa: E402

SMALL, LARGE = 28 * 28 * 16, 28 * 28 * 64  # pixel budgets: at most 16 and 64 image tokens
QUESTION = "Describe the image."


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve-pixels") / "bundle"
    edgevlm.export(str(tiny("qwen2-vl")), str(out), format="onnx", validate=False, progress=None)
    return out


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    srv = start_server(bundle, tmp_path_factory.mktemp("serve-pixels-log") / "server.log")
    yield srv
    srv.stop()
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)


@pytest.fixture(scope="module")
def vlm(bundle):
    with edgevlm.load(str(bundle), device="cpu", threads=1) as model:
        yield model


def ask(client, messages, **extra):
    return client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=6,
                                          extra_body=extra)


def test_the_budget_sets_the_image_tokens_and_the_answer_is_the_runtimes(client, vlm):
    picture = make_image(640, 480, seed=3)
    small, large = (ask(client, [image_message(picture, QUESTION)], max_pixels=b) for b in (SMALL, LARGE))
    for answer, budget in ((small, SMALL), (large, LARGE)):
        reference = vlm.chat().send(QUESTION, [picture], max_new_tokens=6, max_pixels=budget)
        assert answer.choices[0].message.content == reference.text
        assert answer.usage.prompt_tokens == reference.stats.prompt_tokens
    assert large.usage.prompt_tokens - small.usage.prompt_tokens >= 30  # 16 vs 64 tokens at most, 4:3 image


def test_a_follow_up_continues_under_its_budget_and_rebuilds_under_another(client, vlm):
    picture = make_image(500, 400, seed=4)
    first_turn = [image_message(picture, QUESTION)]
    first = ask(client, first_turn, max_pixels=SMALL)
    history = first_turn + [{"role": "assistant", "content": first.choices[0].message.content},
                            {"role": "user", "content": "And the colours?"}]
    same = ask(client, history, max_pixels=SMALL)
    assert same.model_extra["timings"]["replayed_turns"] == 0  # continued from the cached conversation
    assert same.model_extra["timings"]["images_encoded"] == 0
    other = ask(client, history, max_pixels=LARGE)
    assert other.model_extra["timings"]["replayed_turns"] == 1  # the image at the new budget: rebuilt
    assert other.model_extra["timings"]["images_encoded"] == 1
    for answer, budget in ((same, SMALL), (other, LARGE)):  # reference: both turns under that budget
        chat = vlm.chat()
        chat.add_exchange(QUESTION, [picture], first.choices[0].message.content, max_pixels=budget)
        assert answer.choices[0].message.content == chat.send("And the colours?", max_new_tokens=6).text


@pytest.mark.parametrize("field,value,words", [
    ("max_pixels", 0, "positive pixel count"), ("max_pixels", "many", "must be an integer"),
    ("min_pixels", 28 * 28 * 100, "larger than max_pixels")])
def test_bad_budgets_get_a_400_naming_the_field(server, field, value, words):
    body = {"messages": [image_message(make_image(64, 64, seed=1), "hi")], field: value, "max_pixels": SMALL}
    body[field] = value
    status, raw = request(server.port, "POST", "/v1/chat/completions", body)
    error = json.loads(raw)["error"]
    assert status == 400 and words in error["message"], error
