"""Prompt-lookup speculative decoding (runtime/speculative.py): the same greedy tokens as plain decoding,
on exported tiny bundles, through stops, the context limit, multi-turn chats and the fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

import edgevlm
from edgevlm.export.validate import test_image as make_image
from edgevlm.runtime.speculative import PromptLookup

CONTEXT = 384  # small, so a prompt can reach the context limit cheaply
PROMPTS = ("Repeat after me: the cat sat on the mat, the cat sat on the mat.", "Say something.")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from edgevlm.families.tiny import make_tiny

    root = tmp_path_factory.mktemp("speculative")
    out = {}
    # gemma3: sliding-window layers (window 32) and image blocks; minicpmv-2.6: 3-chunk images, grouped queries
    for name in ("gemma3", "minicpmv-2.6"):
        ckpt = make_tiny(name, root / f"ckpt-{name}")
        edgevlm.export(str(ckpt), str(root / name), format="onnx", progress=None, max_context=CONTEXT)
        out[name] = edgevlm.load(str(root / name))
    return out


def _both(vlm, prompt, images=(), **options):
    plain = vlm.generate(prompt, images=images, **options)
    fast = vlm.generate(prompt, images=images, prompt_lookup=6, **options)
    return plain, fast


# -- the drafter ---------------------------------------------------------------------------------

def test_lookup_drafts_what_followed_the_latest_occurrence_of_the_tail():
    lookup = PromptLookup(max_ngram=3, min_ngram=2)
    history = [1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 2, 3]
    assert lookup.draft(history, 4) == [7, 8, 2, 3]  # the latest "2 3" is followed by 7 8
    assert lookup.draft(history + [4], 3) == [5, 9, 2]  # "2 3 4" (longest n-gram first)
    assert PromptLookup().draft([5, 6, 7, 8], 4) == []  # no earlier occurrence: no draft
    assert PromptLookup().draft(history, 0) == []


def test_lookup_stops_drafts_at_banned_ids_and_indexes_as_the_history_grows():
    lookup = PromptLookup(max_ngram=2, min_ngram=2, banned=[99])
    history = [1, 2, 5, 99, 6, 1, 2]
    assert lookup.draft(history, 4) == [5]  # the image placeholder is never fed as a draft
    history += [5, 7, 8, 5, 7]
    assert lookup.draft(history, 2) == [8, 5]  # the occurrence added since the last call wins
    with pytest.raises(ValueError):
        PromptLookup(max_ngram=1, min_ngram=2)


# -- exactness on bundles --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gemma3", "minicpmv-2.6"])
def test_greedy_tokens_are_identical_and_drafts_are_accepted(bundles, name):
    vlm = bundles[name]
    accepted = 0
    for prompt in PROMPTS:
        plain, fast = _both(vlm, prompt, max_new_tokens=48)
        assert fast.token_ids == plain.token_ids and fast.text == plain.text
        assert fast.finish_reason == plain.finish_reason
        assert plain.stats.draft_tokens == 0 and fast.stats.accepted_draft_tokens <= fast.stats.draft_tokens
        accepted += fast.stats.accepted_draft_tokens
    image = make_image(500, 300, seed=3)
    plain, fast = _both(vlm, "Describe the picture, then describe it again.", [image], max_new_tokens=40)
    assert fast.token_ids == plain.token_ids
    assert accepted > 0  # the path under test really ran (tiny random models repeat themselves)


def test_stop_strings_and_stop_ids_end_both_alike_and_leave_the_same_cache(bundles):
    vlm = bundles["gemma3"]
    full = vlm.generate(PROMPTS[0], max_new_tokens=48)
    stop = full.text[len(full.text) // 2:len(full.text) // 2 + 2]
    plain, fast = _both(vlm, PROMPTS[0], max_new_tokens=48, stop=[stop])
    assert fast.finish_reason == plain.finish_reason == "stop" and fast.token_ids == plain.token_ids
    # A stop id met inside a run of accepted drafts: the consumer stops there, the cache is rewound.
    saved = set(vlm.stop_ids)
    vlm.stop_ids |= {full.token_ids[30]}
    try:
        chats = []
        for lookup in (0, 6):
            chat = vlm.chat()
            first = chat.send(PROMPTS[0], max_new_tokens=48, prompt_lookup=lookup)
            second = chat.send("And again.", max_new_tokens=24, prompt_lookup=lookup)
            chats.append((first.token_ids, first.finish_reason, second.token_ids, vlm.backend.n_past))
        assert chats[0] == chats[1] and chats[0][1] == "eos"
    finally:
        vlm.stop_ids = saved


def test_turns_cut_by_their_length_continue_identically(bundles):
    """The last token of a turn stays pending (never in the cache) with speculation too."""
    vlm = bundles["minicpmv-2.6"]
    runs = []
    for lookup in (0, 6):
        chat = vlm.chat()
        ids = [chat.send(text, max_new_tokens=n, prompt_lookup=lookup).token_ids
               for text, n in ((PROMPTS[0], 7), ("Once more.", 11), ("And again.", 20))]
        runs.append((ids, vlm.backend.n_past, chat.conv.n_fed))
    assert runs[0] == runs[1]
    assert runs[1][1] == runs[1][2]  # the backend holds exactly what the conversation says it fed


def test_the_context_limit_is_respected(bundles):
    vlm = bundles["gemma3"]
    ids = vlm.tokenizer.encode("the cat sat on the mat " * 200)
    text = vlm.tokenizer.decode(ids[:CONTEXT - 40])
    plain, fast = _both(vlm, text, max_new_tokens=200)
    assert plain.finish_reason == "length" and len(plain.token_ids) < 40
    assert fast.token_ids == plain.token_ids and vlm.backend.n_past <= CONTEXT


def test_repetition_penalty_sees_the_same_history(bundles):
    plain, fast = _both(bundles["gemma3"], PROMPTS[0], max_new_tokens=40, repetition_penalty=1.3)
    assert fast.token_ids == plain.token_ids


def test_sampling_and_caches_that_cannot_rewind_decode_plainly(bundles):
    vlm = bundles["gemma3"]
    plain, fast = _both(vlm, PROMPTS[0], max_new_tokens=24, temperature=0.8, seed=11)
    assert fast.token_ids == plain.token_ids and fast.stats.draft_tokens == 0  # sampling: not exact, not used
    vlm.backend.rewinds_tokens = False  # what a backend with recurrent-state layers declares
    try:
        plain, fast = _both(vlm, PROMPTS[0], max_new_tokens=24)
        assert fast.token_ids == plain.token_ids and fast.stats.draft_tokens == 0
    finally:
        del vlm.backend.rewinds_tokens


def test_a_negative_draft_count_is_a_clear_error(bundles):
    from edgevlm.errors import PromptError

    with pytest.raises(PromptError, match="prompt_lookup is -1"):
        bundles["gemma3"].generate("hi", prompt_lookup=-1)


def test_one_forward_verifies_rows_as_single_steps_would(bundles):
    """The premise: row i of a multi-token forward = the single-step logits after the same tokens."""
    backend = bundles["minicpmv-2.6"].backend
    ids = np.array([5, 17, 42, 9, 23, 7, 99, 4], np.int64)
    backend.rewind(0)
    backend.forward(ids[:3])
    rows = backend.forward(ids[3:], all_logits=True)  # [5, V]
    backend.rewind(3)
    singles = np.stack([backend.forward(ids[i:i + 1]) for i in range(3, 8)])
    np.testing.assert_allclose(rows, singles, atol=2e-5)
    assert (rows.argmax(-1) == singles.argmax(-1)).all()


def test_a_consumer_stopping_inside_a_run_of_accepted_drafts_finds_the_lazy_cache(bundles):
    """Cut after every possible token: the cache holds every taken token but the last, as generate_step's."""
    from edgevlm.runtime.generate import feed, generate_step
    from edgevlm.runtime.sampling import Sampler
    from edgevlm.runtime.speculative import DraftStats, speculative_steps
    from edgevlm.runtime.turn import Conversation, prepare_turn

    vlm = bundles["gemma3"]
    vlm._owner = None
    turn = prepare_turn(vlm, Conversation(), PROMPTS[0])

    def start(speculate: bool, stats: DraftStats | None = None):
        vlm.backend.rewind(0)
        logits = feed(vlm.backend, turn)
        if speculate:
            return speculative_steps(vlm.backend, logits, Sampler.greedy(), (), list(turn.ids), turn.next_position,
                                     32, PromptLookup(), 6, stats)
        return generate_step(vlm.backend, logits, Sampler.greedy(), (), list(turn.ids), turn.next_position, 32)

    whole = list(start(False))
    stats = DraftStats()
    for cut in range(1, 33):
        steps = start(True, stats)
        base = vlm.backend.n_past
        taken = [next(steps) for _ in range(cut)]
        steps.close()
        assert taken == whole[:cut] and vlm.backend.n_past == base + cut - 1, cut
    assert stats.accepted > 0


def test_llama_cpp_backend_gives_the_same_tokens(bundles, tmp_path):
    """The GGUF bundle's backend (llama.cpp: all-row logits, KV rows removed on rewind) takes the same path."""
    from edgevlm.families.tiny import make_tiny

    ckpt = make_tiny("gemma3", tmp_path / "ckpt")
    edgevlm.export(str(ckpt), str(tmp_path / "gguf"), format="gguf", progress=None, max_context=CONTEXT)
    vlm = edgevlm.load(str(tmp_path / "gguf"))
    accepted = 0
    for prompt in PROMPTS:
        plain, fast = _both(vlm, prompt, max_new_tokens=40)
        assert fast.token_ids == plain.token_ids
        accepted += fast.stats.accepted_draft_tokens
    assert accepted > 0
    vlm.close()
