"""The runtime API on exported tiny bundles: generate / stream / chat, caches, stops and clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import edgevlm
from edgevlm.errors import ImageError, PromptError
from edgevlm.export.validate import test_image as make_image


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from edgevlm.families.tiny import make_tiny

    root = tmp_path_factory.mktemp("runtime")
    out = {}
    for name in ("minicpmv-2.6", "paligemma"):
        ckpt = make_tiny(name, root / f"ckpt-{name}")
        edgevlm.export(str(ckpt), str(root / name), format="onnx", progress=None)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def vlm(bundles):
    return edgevlm.load(str(bundles["minicpmv-2.6"]))


def test_generate_returns_text_ids_and_stats(vlm):
    result = vlm.generate("What is in the picture?", images=[make_image()], max_new_tokens=12)
    assert len(result.token_ids) == 12 and result.finish_reason == "length"
    assert result.text == vlm.tokenizer.decode(result.token_ids)
    s = result.stats
    assert s.images == 1 and s.prompt_tokens > 3 * 64  # overview + 2 slices of 64 tokens
    assert s.vision_ms > 0 and s.prefill_tokens_per_s > 0 and s.decode_tokens_per_s > 0 and s.peak_rss_mb > 0
    assert 0 < s.time_to_first_token_ms


def test_stream_concatenates_to_generate(vlm):
    image = make_image(500, 500, seed=2)
    deltas = list(vlm.stream("Describe it.", images=[image], max_new_tokens=16))
    whole = vlm.generate("Describe it.", images=[image], max_new_tokens=16)
    assert "".join(d.text for d in deltas) == whole.text


def test_same_image_is_encoded_once(vlm):
    image = make_image(300, 200, seed=5)
    first = vlm.generate("Describe it.", images=[image], max_new_tokens=2)
    again = vlm.generate("What colour?", images=[image], max_new_tokens=2)
    assert first.stats.images_from_cache == 0 and again.stats.images_from_cache == 1
    assert again.stats.vision_ms == 0


def test_two_turn_chat_reuses_the_cache_and_equals_one_prompt(vlm):
    chat = vlm.chat()
    first = chat.send("What is in the picture?", images=[make_image()], max_new_tokens=6)
    second = chat.send("And what colour is it?", max_new_tokens=8)
    assert second.stats.reused_tokens > first.stats.prompt_tokens  # earlier turn not recomputed
    assert second.stats.prompt_tokens < 40 and second.stats.vision_ms == 0
    # One prompt holding both turns, recomputed from scratch: same logits path, same answer.
    ids = np.concatenate([seg[0] for seg in chat.conv.fed[:-len(second.token_ids) + 1 or None]])
    rows = np.concatenate([seg[1] for seg in chat.conv.fed if seg[1] is not None])
    backend = vlm.backend
    backend.rewind(0)
    vlm._owner = None
    logits = backend.forward(ids, rows, None)
    tokens = []
    for _ in range(len(second.token_ids)):
        tokens.append(int(logits.argmax()))
        logits = backend.forward(np.array([tokens[-1]]))
    assert tokens == second.token_ids


def test_interleaved_chats_keep_their_own_history(vlm):
    a, b = vlm.chat(), vlm.chat()
    a.send("Tell me about cats.", max_new_tokens=4)
    b.send("Tell me about dogs.", max_new_tokens=4)
    follow = a.send("More.", max_new_tokens=6)
    fresh = vlm.chat()
    fresh.send("Tell me about cats.", max_new_tokens=4)
    assert fresh.send("More.", max_new_tokens=6).token_ids == follow.token_ids


def test_stop_strings_end_the_text(vlm):
    full = vlm.generate("Say something.", max_new_tokens=24)
    assert len(full.text) > 4
    stop = full.text[3:5]
    cut = vlm.generate("Say something.", max_new_tokens=24, stop=[stop])
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.find(stop)]


def test_sampling_is_seeded(vlm):
    a = vlm.generate("Say something.", max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.9, seed=7)
    b = vlm.generate("Say something.", max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.9, seed=7)
    greedy = vlm.generate("Say something.", max_new_tokens=10)
    assert a.token_ids == b.token_ids and a.token_ids != greedy.token_ids


def test_prompt_longer_than_context_is_refused_before_work(vlm):
    with pytest.raises(PromptError, match="more than the context of 2048"):
        vlm.generate("word " * 3000, max_new_tokens=4)


def test_image_count_must_match_markers(vlm):
    with pytest.raises(PromptError, match="2 image marker"):
        vlm.generate("(<image>./</image>) and (<image>./</image>)", images=[make_image()])


def test_corrupt_image_names_the_file(vlm, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        vlm.generate("What is this?", images=[str(bad)])


def test_prefix_lm_bundle_runs(bundles):
    vlm = edgevlm.load(str(bundles["paligemma"]))
    result = vlm.generate("caption en", images=[make_image()], max_new_tokens=5)
    assert result.stats.prompt_tokens == 256 + 1 + len(vlm.tokenizer.encode("caption en\n"))


def test_cli_run_json(bundles, tmp_path):
    import json

    image = tmp_path / "pic.png"
    make_image().save(image)
    runs = []
    for extra in ([], ["--prompt-lookup", "4"]):
        out = subprocess.run([sys.executable, "-m", "edgevlm.cli", "run", str(bundles["minicpmv-2.6"]), "--image",
                              str(image), "--prompt", "Describe. Describe. Describe.", "--max-tokens", "12", "--json",
                              *extra], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    plain, lookup = runs
    assert len(plain["token_ids"]) == 12 and "decode_tokens_per_s" in plain["stats"]
    # prompt lookup is exact: the same tokens; it reports what it drafted (0 drafts when it is off)
    assert lookup["token_ids"] == plain["token_ids"]
    assert plain["stats"]["draft_tokens"] == 0 and lookup["stats"]["draft_tokens"] >= lookup["stats"]["accepted_draft_tokens"]


def test_cli_inspect_reports_tampering(bundles, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundles["paligemma"], copy)
    with open(copy / "decoder.onnx", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    out = subprocess.run([sys.executable, "-m", "edgevlm.cli", "inspect", str(copy)], capture_output=True, text=True)
    assert out.returncode == 2 and "sha256 does not match" in out.stderr and "Traceback" not in out.stderr


def test_runtime_imports_no_torch():
    code = ("import sys, edgevlm, edgevlm.runtime, edgevlm.processing.prompt, edgevlm.runtime.backends.onnxruntime;"
            "edgevlm.load; bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_model_from_many_threads_gives_each_the_answer_it_gets_alone(vlm):
    """Six threads (three with an image, three without) on one VLM: each answer equals the same call made
    alone (turns are serialised; before, 5 of 6 answers came out wrong without a word)."""
    import threading

    calls = [("Describe it.", [make_image(320, 240, seed=s)]) if s % 2 else ("Say something.", []) for s in range(6)]
    alone = [vlm.generate(text, images=images, max_new_tokens=10).token_ids for text, images in calls]
    got: list = [None] * len(calls)

    def run(i):
        got[i] = vlm.generate(calls[i][0], images=calls[i][1], max_new_tokens=10).token_ids

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == alone


def test_a_second_turn_while_streaming_on_the_same_thread_is_an_error(vlm):
    from edgevlm.errors import EdgeVLMError

    stream = vlm.stream("Say something.", max_new_tokens=8)
    next(stream, None)
    with pytest.raises(EdgeVLMError, match="already streaming"):
        vlm.generate("Another.", max_new_tokens=2)
    stream.close()
    assert len(vlm.generate("Another.", max_new_tokens=2).token_ids) == 2  # the model is free again


def test_raw_completion_feeds_bos_and_the_text_only(bundles):
    vlm = edgevlm.load(str(bundles["paligemma"]))
    text = "The capital of France is"
    result = vlm.generate(text, raw=True, max_new_tokens=4)
    bos = vlm.tokenizer.encode(vlm.template.bos) if vlm.template.bos else []
    assert result.stats.prompt_tokens == len(bos) + len(vlm.tokenizer.encode(text))
    chat = vlm.generate(text, max_new_tokens=4)  # the template adds its own text
    assert chat.stats.prompt_tokens != result.stats.prompt_tokens
    with_image = vlm.generate(text, images=[make_image()], raw=True, max_new_tokens=2)
    assert with_image.stats.prompt_tokens == result.stats.prompt_tokens + 256 + 1  # placeholder + <bos> after it


@pytest.mark.parametrize("args, message", [
    (["run", "{bundle}", "--prompt", "hi", "--max-tokens", "-1"], "greater than or equal to 0"),
    (["quantize", "{bundle}", "-o", "{bundle}/inner"], "inside the source bundle"),
    (["quantize", "{bundle}", "-o", "{tmp}/q", "--recipe", "w4", "--part", "decoder"], "write NAME=METHOD"),
    (["export", "{bundle}", "-o", "{tmp}/x"], "no config.json"),
])
def test_cli_bad_input_is_one_clear_line(bundles, tmp_path, args, message):
    args = [a.format(bundle=bundles["minicpmv-2.6"], tmp=tmp_path) for a in args]
    out = subprocess.run([sys.executable, "-m", "edgevlm.cli", *args], capture_output=True, text=True)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (bundles["minicpmv-2.6"] / "inner").exists()


def test_damaged_checkpoint_is_one_line(tiny, tmp_path):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny("paligemma"), ckpt)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = subprocess.run([sys.executable, "-m", "edgevlm.cli", "export", str(ckpt), "-o", str(tmp_path / "b")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "model.safetensors: cannot read these weights" in out.stderr and "damaged or truncated" in out.stderr
    assert not (tmp_path / "b").exists() and [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_run_chat_inspect_and_bench_work_without_torch_or_transformers(bundles, tmp_path):
    """The runtime-only install: torch and transformers made unimportable, every runtime command works."""
    bundle = str(bundles["minicpmv-2.6"])
    image = tmp_path / "pic.png"
    make_image(320, 240).save(image)
    block = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
             "from edgevlm.cli import app; sys.argv = ['edgevlm'] + sys.argv[1:]; app()")
    commands = [["run", bundle, "--prompt", "Describe.", "--image", str(image), "--max-tokens", "3", "--json"],
                ["inspect", bundle], ["bench", bundle, "--runs", "1", "--max-tokens", "2", "--json"]]
    for args in commands:
        out = subprocess.run([sys.executable, "-c", block, *args], capture_output=True, text=True)
        assert out.returncode == 0, f"{args[0]}: {out.stderr[-1500:]}"
    out = subprocess.run([sys.executable, "-c", block, "chat", bundle, "--max-tokens", "3"], input="Hello\n/quit\n",
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr[-1500:]


def test_a_stream_closed_mid_turn_leaves_the_chat_consistent(vlm):
    """Reading a few deltas and dropping the stream (a client that went away) keeps the conversation whole:
    the next turn continues from what the cache really holds, and equals the same two turns run to the end
    with the first turn cut at the same token."""
    chat = vlm.chat()
    stream = chat.stream("Say something long.", max_new_tokens=40)
    for _ in range(3):
        next(stream)
    stream.close()
    generated = len(chat.conv.history) - len(chat.conv.fed[0][0])  # sampled before the stream was dropped
    assert 0 < generated < 40 and chat.conv.pending == chat.conv.history[-1:]
    second = chat.send("And then?", max_new_tokens=6)
    # the same conversation, its first turn stopped at that token by the length limit
    whole = vlm.chat()
    whole.send("Say something long.", max_new_tokens=generated)
    assert whole.send("And then?", max_new_tokens=6).token_ids == second.token_ids
