"""MiniCPM-V mmproj GGUF in llama.cpp's own mtmd: the independent check of our vision + resampler export.

mtmd slices the raw image itself (C++ code, techspec §4.5) and runs its own SigLIP + resampler graph
(clip.cpp) on our mmproj; the reference slices with edgevlm.processing and runs PyTorch. Where the two
slicers agree (one side > 448 and area > 448², e.g. 640x480, 800x600, 1344x1344), every chunk's
embeddings must have cosine >= 0.999 per token. Where they disagree (500x300: HF does not slice, mtmd
makes a 2-slice grid), the test pins the known divergence so a llama.cpp change is noticed.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from edgevlm.families.minicpmv.mmproj import write_mmproj  # noqa: E402
from edgevlm.export.gguf.text import export_text_gguf  # noqa: E402
from edgevlm.families import load_reference  # noqa: E402
from edgevlm.families.minicpmv.spec import VERSIONS  # noqa: E402
from edgevlm.processing.config import ProcessorConfig  # noqa: E402
from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder  # noqa: E402
from edgevlm.runtime.images import prepare_image  # noqa: E402

pytestmark = pytest.mark.gguf


@pytest.fixture(scope="module")
def encoder(tiny, tmp_path_factory):
    """(name, mmproj dtype) -> (reference, MtmdImageEncoder, mmproj path)."""
    cache = {}

    def get(name, dtype="fp16"):
        if (name, dtype) not in cache:
            ckpt = tiny(name)
            ref = load_reference(ckpt)
            out = tmp_path_factory.mktemp(f"mmproj-{name}")
            export_text_gguf(ref, ckpt, out / "text.gguf", "fp32")
            write_mmproj(ref, out / f"mmproj-{dtype}.gguf", dtype)
            cache[(name, dtype)] = (ref, MtmdImageEncoder(out / "text.gguf", out / f"mmproj-{dtype}.gguf"),
                                    out / f"mmproj-{dtype}.gguf")
        return cache[(name, dtype)]

    yield get
    for _, enc, _ in cache.values():
        enc.close()


def smooth_rgb(width, height):
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    return (255 * (0.5 + 0.5 * np.sin(6 * x + 3 * y + np.array([0, 1, 2])))).astype(np.uint8)


def reference_features(ref, rgb):
    from PIL import Image

    prepared = prepare_image(Image.fromarray(rgb), ProcessorConfig())
    with torch.no_grad():
        return ref.image_features(*(torch.from_numpy(prepared.inputs[k]) for k in
                                    ("pixel_values", "patch_attention_mask", "tgt_sizes"))).numpy()


def _cosines(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("name,size,dtype", [("minicpmv-2.5", (1344, 1344), "fp16"), ("minicpmv-2.6", (800, 600), "fp16"),
                                             ("minicpmv-4.5", (640, 480), "fp32")])
def test_mtmd_embeddings_match_reference(encoder, name, size, dtype):
    ref, enc, _ = encoder(name, dtype)
    rgb = smooth_rgb(*size)
    ours = enc.encode(rgb)  # mtmd: list of [query_num, D], overview first then slices row-major
    expected = reference_features(ref, rgb)  # [chunks, query_num, D]
    worst = [float(_cosines(a, b).min()) for a, b in zip(ours, expected)]
    print(f"{name} {size[0]}x{size[1]} mmproj {dtype}: {len(ours)} chunks (reference {len(expected)}), "
          f"min cosine per chunk {np.round(worst, 6).tolist()}")
    assert len(ours) == len(expected)
    assert all(o.shape == e.shape for o, e in zip(ours, expected))
    assert min(worst) >= 0.999


def test_mtmd_slicing_divergence_is_as_documented(encoder):
    """500x300: one side > 448 but area <= 448²: HF keeps one overview (64 tokens), mtmd slices (2.6+)."""
    ref, enc, _ = encoder("minicpmv-2.6")
    rgb = smooth_rgb(500, 300)
    ours = enc.encode(rgb)
    expected = reference_features(ref, rgb)
    print(f"500x300: mtmd {len(ours)} chunks, reference {len(expected)}")
    assert len(expected) == 1 and len(ours) == 3


@pytest.mark.parametrize("name", ["minicpmv-2.5", "minicpmv-4.5"])
def test_mmproj_metadata(encoder, name):
    ref, _, path = encoder(name)
    fields = {k: f.contents() for k, f in gguf.GGUFReader(str(path)).fields.items()}
    names = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    assert fields["general.architecture"] == "clip"
    assert fields["clip.projector_type"] == "resampler"
    assert fields["clip.minicpmv_version"] == VERSIONS[ref.version][1]
    assert fields["clip.minicpmv_query_num"] == ref.query_num
    assert {"resampler.pos_embed_k", "resampler.proj.weight", "resampler.attn.q.weight", "v.post_ln.weight",
            "v.patch_embd.weight", "v.position_embd.weight"} <= names


def test_mtmd_prompt_layout(encoder, tiny):
    """mtmd's token layout around a 2x2-sliced image (techspec §4.6): <image> overview </image>, then
    <slice> S </slice> per slice with "\n" between rows, the same layout our 2.6 prompts use minus <image_id>."""
    from tokenizers import Tokenizer

    ref, enc, _ = encoder("minicpmv-2.6")
    tok = Tokenizer.from_file(str(tiny("minicpmv-2.6") / "tokenizer.json"))
    chunks = enc.tokenize(smooth_rgb(800, 600), "hi")
    layout = "".join("[IMG]" if kind == "image" else tok.decode(payload, skip_special_tokens=False)
                     for kind, payload in chunks)
    print(f"mtmd layout: {layout!r}")
    assert all(n == ref.query_num for kind, n in chunks if kind == "image")
    assert layout.replace(" ", "") == ("<image>[IMG]</image><slice>[IMG]</slice><slice>[IMG]</slice>\n"
                                       "<slice>[IMG]</slice><slice>[IMG]</slice>hi")


def test_stock_chat_handler_runs_our_files(encoder, tmp_path):
    """llama-cpp-python's own MiniCPM-V chat handler (what users of stock llama.cpp run) takes our two files."""
    import base64
    import io

    from llama_cpp.llama_chat_format import MiniCPMv26ChatHandler
    from PIL import Image

    ref, _, mmproj = encoder("minicpmv-2.6")
    handler = MiniCPMv26ChatHandler(clip_model_path=str(mmproj), verbose=False)
    llm = llama_cpp.Llama(model_path=str(mmproj.parent / "text.gguf"), chat_handler=handler, n_ctx=1024,
                          n_threads=2, verbose=False)
    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(448, 448)).save(buf, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    reply = llm.create_chat_completion(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": uri}}, {"type": "text", "text": "What is in the image?"}]}],
        max_tokens=4, temperature=0)
    print(f"stock chat handler: {reply['usage']}")
    assert reply["usage"]["prompt_tokens"] > ref.query_num  # the image's 64 embeddings plus the chat text
    assert reply["usage"]["completion_tokens"] >= 1
