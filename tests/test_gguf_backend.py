"""The llama.cpp backend on whole GGUF bundles (text.gguf + vision.onnx [+ mmproj.gguf]) against the references.

- MiniCPM-V: causal; image features enter as embedding rows at the ``<unk>`` placeholders.
- PaliGemma: prefix-LM: image + <bos> + prefix + "\\n" decoded as one non-causal batch, compared with
  transformers' own forward (token_type_ids) and ``generate``.
- Gemma 3: the image block bidirectional, the rest causal, compared with transformers the same way.
Also: multi-turn KV reuse and rewind give the same logits as one long forward; errors are clear.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")

from edgevlm.errors import PromptError  # noqa: E402
from edgevlm.export import export  # noqa: E402
from edgevlm.families import load_reference  # noqa: E402
from edgevlm.manifest import read_manifest  # noqa: E402
from edgevlm.runtime.backends.llamacpp import LlamaCppBackend  # noqa: E402

pytestmark = pytest.mark.gguf
MAX_CONTEXT = 512


def write_bundle(ref, ckpt, out, dtype="fp32"):
    """The GGUF bundle, without the export's own parity check (these tests make their own)."""
    export(ckpt, out, format="gguf", dtype=dtype, max_context=MAX_CONTEXT, overwrite=True, validate=False,
           progress=None)
    return read_manifest(out)


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    """name -> (reference, backend, bundle dir); exported and opened once per module."""
    cache = {}

    def get(name):
        if name not in cache:
            ckpt = tiny(name)
            ref = load_reference(ckpt)
            out = tmp_path_factory.mktemp("gguf-bundles") / name
            manifest = write_bundle(ref, ckpt, out)
            cache[name] = (ref, LlamaCppBackend(out, manifest, threads=2), out)
        return cache[name]

    yield get
    for _, backend, _ in cache.values():
        backend.close()


def smooth_image(width, height):
    """A smooth RGB test image (smooth, so resampling implementations agree closely)."""
    from PIL import Image

    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    return Image.fromarray((255 * (0.5 + 0.5 * np.sin(6 * x + 3 * y + np.array([0, 1, 2])))).astype(np.uint8))


def _relative(ours, expected):
    return float(np.abs(ours - expected).max() / np.abs(expected).max())


def _greedy(backend, logits, n):
    tokens = []
    for _ in range(n):
        tokens.append(int(np.argmax(logits)))
        logits = backend.forward(np.array([tokens[-1]]))
    return tokens


def test_minicpmv_image_prompt_matches_reference(bundle):
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.images import prepare_image

    ref, backend, _ = bundle("minicpmv-2.6")
    prepared = prepare_image(smooth_image(640, 480), ProcessorConfig())
    features = backend.encode_images(prepared.inputs)  # [chunks, 64, D] through vision.onnx
    with torch.no_grad():
        expected_features = ref.image_features(*(torch.from_numpy(prepared.inputs[k]) for k in
                                                 ("pixel_values", "patch_attention_mask", "tgt_sizes"))).numpy()
    n_rows = features.shape[0] * features.shape[1]
    ids = np.array([3, 17, 42] + [ref.image_token_id] * n_rows + [99, 5, 61, 7], np.int64)
    backend.rewind(0)
    ours = backend.forward(ids, features, all_logits=True)
    with torch.no_grad():
        expected = ref.logits(torch.from_numpy(ids)[None], torch.from_numpy(features))[0].numpy()
    tokens = _greedy(backend, ours[-1], 16)
    want = ref.greedy(torch.from_numpy(ids)[None], torch.from_numpy(features), 16)
    print(f"minicpmv-2.6: {features.shape[0]} chunks, vision max abs {np.abs(features - expected_features).max():.2e}, "
          f"logits relative {_relative(ours, expected):.2e}, greedy {tokens[:8]}")
    assert np.abs(features - expected_features).max() < 1e-4
    assert _relative(ours, expected) <= 1e-3
    assert tokens == want


def _hf_inputs(ckpt, family):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(ckpt))
    image = smooth_image(224, 224)
    if family == "paligemma":
        return processor(images=image, text="caption en", return_tensors="pt")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the image?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=image, text=text, return_tensors="pt")


@pytest.mark.parametrize("name", ["paligemma", "paligemma2", "gemma3"])
def test_bidirectional_blocks_match_transformers(bundle, tiny, name):
    ref, backend, _ = bundle(name)
    inputs = _hf_inputs(tiny(name), ref.family)
    ids = inputs["input_ids"][0].numpy()
    types = inputs["token_type_ids"][0].numpy()
    if ref.family == "paligemma":  # prefix-LM: the whole prefix (token type 0) is one bidirectional block
        blocks = np.where(types == 0, 0, -1).astype(np.int32)
    else:  # each image's placeholder run is a block
        blocks = np.where(ids == ref.image_token_id, 0, -1).astype(np.int32)
    features = backend.encode_images({"pixel_values": inputs["pixel_values"].numpy()})
    with torch.no_grad():
        expected = ref.reference_logits(**inputs)[0].numpy()
    backend.rewind(0)
    causal = backend.forward(ids, features, None, all_logits=True)
    backend.rewind(0)
    ours = backend.forward(ids, features, blocks, all_logits=True)
    tokens = _greedy(backend, ours[-1], 16)
    want = ref.reference_generate(16, **inputs)
    print(f"{name}: {int((blocks >= 0).sum())}-token block, logits relative {_relative(ours, expected):.2e} "
          f"(causal-only would be {_relative(causal, expected):.2e}); greedy {tokens[:8]}")
    assert _relative(ours, expected) <= 1e-3
    assert _relative(causal, expected) > 1e-2  # the block mask matters, so the test can fail
    assert tokens == want[: len(tokens)]


def test_kv_cache_reuse_and_rewind(bundle):
    _, backend, _ = bundle("gemma3")
    first, second = np.arange(10, 30), np.arange(40, 52)
    backend.rewind(0)
    whole = backend.forward(np.concatenate([first, second]), all_logits=True)
    backend.rewind(0)
    backend.forward(first)
    turn2 = backend.forward(second, all_logits=True)
    assert backend.n_past == len(first) + len(second)
    backend.rewind(len(first))  # drop turn 2 and redo it
    again = backend.forward(second)
    d1 = float(np.abs(turn2 - whole[len(first):]).max())
    d2 = float(np.abs(again - whole[-1]).max())
    print(f"two turns vs one forward: max abs {d1:.2e}; after rewind: {d2:.2e}")
    assert d1 < 1e-4 and d2 < 1e-4


def test_clear_errors(bundle):
    ref, backend, _ = bundle("gemma3")
    backend.rewind(0)
    with pytest.raises(PromptError, match="image placeholder"):
        backend.forward(np.array([5, ref.image_token_id, 6]), np.zeros((2, ref.text.hidden_size), np.float32))
    with pytest.raises(PromptError, match="do not fit"):
        backend.forward(np.zeros(MAX_CONTEXT + 1, np.int64))
    assert backend.n_past == 0
    with pytest.raises(ValueError):
        backend.rewind(5)
