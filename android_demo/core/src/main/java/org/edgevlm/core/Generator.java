package org.edgevlm.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * One conversation over an {@link InferenceEngine}, ported from runtime/vlm.py {@code Chat.stream} and the turn
 * layers it composes: prepare the turn (runtime/turn.py: images planned first so the prompt length is known, the
 * turn laid out and checked against the context, images prepared and encoded), feed only the new tokens (earlier
 * turns stay in the KV cache), then generate step by step (runtime/generate.py: logits processors, then the
 * sampler) until an end id or the token budget. The last sampled token of a turn that hit its budget is kept
 * pending and fed at the start of the next turn, exactly as Python does. Positions are implicit: the engine
 * numbers tokens from its cache length plus the text model's position offset, which equals the 1-D positions
 * Python's turn layer hands its backends (the golden replay checks it).
 *
 * <p>Nothing here knows a model family: placeholders, chat turns and attention blocks come from the manifest.
 * The generator assumes it is the only user of its engine (Python's multi-chat cache rebuild is not ported).
 */
public final class Generator {
    private final Manifest manifest;
    private final InferenceEngine engine;
    private final VisionEncoder vision;
    private final TextTokenizer tokenizer;
    private final String system;
    private final PromptBuilder prompts;
    private final ImagePreprocessor preprocessor;
    private final long featureId;
    private final Set<Long> stopIds = new LinkedHashSet<>();
    private final long[] suppressIds; // never generated: the image placeholder only ever carries image features
    private final int vocabLimit; // ids from here on are embedding-table padding, not tokens: never generated

    private int turns;
    private int images; // images of earlier turns: image ids continue across turns
    private int fedTokens; // tokens the KV cache holds for this conversation
    private final List<Long> pending = new ArrayList<>(); // sampled, not yet fed
    private final List<Long> history = new ArrayList<>(); // every token id of the conversation

    public Generator(Manifest manifest, InferenceEngine engine, VisionEncoder vision, TextTokenizer tokenizer, String system) {
        this.manifest = manifest;
        this.engine = engine;
        this.vision = vision;
        this.tokenizer = tokenizer;
        this.system = system;
        this.prompts = new PromptBuilder(manifest.layout, manifest.chatTemplate);
        this.preprocessor = new ImagePreprocessor(manifest.processor);
        Long feature = tokenizer.tokenToId(manifest.layout.featureToken);
        if (feature == null) {
            throw new PromptException("the tokenizer has no " + Py.repr(manifest.layout.featureToken)
                    + " token; the bundle's tokenizer does not match");
        }
        this.featureId = feature;
        // Generation ends at an end-of-sequence id or at a stop string that is one special token.
        stopIds.addAll(manifest.tokenizer.eosIds);
        for (String s : manifest.chatTemplate.stopStrings) {
            Long id = tokenizer.tokenToId(s);
            if (id != null) {
                stopIds.add(id);
            }
        }
        Long imageToken = manifest.tokenizer.imageTokenId;
        suppressIds = imageToken == null ? new long[0] : new long[] {imageToken};
        vocabLimit = manifest.tokenizer.vocabSize > 0 ? manifest.tokenizer.vocabSize : Integer.MAX_VALUE;
    }

    /** VLM.logits_processors: suppressed ids, the vocabulary cap, and the repetition penalty unless it is 1. */
    private List<LogitsProcessor> processors(double repetitionPenalty) {
        List<LogitsProcessor> out = new ArrayList<>();
        out.add(LogitsProcessor.suppressTokens(suppressIds));
        out.add(LogitsProcessor.capVocabulary(vocabLimit));
        if (repetitionPenalty != 1.0) {
            out.add(LogitsProcessor.penalizeRepetition(repetitionPenalty));
        }
        return out;
    }

    public Set<Long> stopIds() {
        return stopIds;
    }

    /** Answers one user turn; {@code listener} (may be null) gets each token as it is sampled. */
    public GenerationResult send(String text, List<RgbImage> images, GenerationOptions options, TokenListener listener) {
        GenerationOptions opts = options != null ? options : new GenerationOptions();
        int maxNewTokens = opts.maxNewTokens(manifest.generation);
        SamplingParams params = opts.params(manifest.generation);
        Sampler sampler = new Sampler(params);
        List<LogitsProcessor> processors = processors(params.repetitionPenalty);
        GenerationStats stats = new GenerationStats();
        long start = System.nanoTime();

        // 1. grids without touching pixels, so the prompt length is known before any heavy work
        List<int[]> grids = new ArrayList<>();
        int[] chunks = new int[images.size()];
        for (int i = 0; i < images.size(); i++) {
            int[] grid = preprocessor.gridOf(images.get(i).width, images.get(i).height);
            grids.add(grid);
            chunks[i] = grid == null ? 1 : 1 + grid[0] * grid[1];
        }

        // 2. this turn's tokens, and the context check
        String turnText = turns == 0 ? prompts.build(text, grids, system) : prompts.followUp(text, grids, this.images);
        TokenLayout layout = TokenLayout.of(tokenizer.encode(turnText), featureId, manifest.layout, chunks);
        long[] ids = concat(pending, layout.inputIds);
        int[] blocks = new int[ids.length];
        Arrays.fill(blocks, 0, pending.size(), -1);
        System.arraycopy(layout.blockIds, 0, blocks, pending.size(), layout.blockIds.length);
        int used = fedTokens;
        if (used + ids.length + 1 > engine.maxContext()) {
            throw new PromptException("the prompt needs " + ids.length + " tokens (" + layout.imagePositions.length + " for "
                    + images.size() + " image(s))" + (used > 0 ? " after " + used + " tokens of earlier turns" : "")
                    + ", more than the context of " + engine.maxContext() + " allows; shorten the prompt, use fewer or "
                    + "smaller images (max_slice_nums), start a new chat, or export with a larger --max-context");
        }

        // 3. image features: preprocessing, then the vision encoder
        List<float[]> rows = new ArrayList<>();
        for (RgbImage image : images) {
            long t0 = System.nanoTime();
            PreparedImage prepared = preprocessor.prepare(image);
            long t1 = System.nanoTime();
            rows.addAll(Arrays.asList(vision.encode(prepared)));
            stats.slicingMs += (t1 - t0) / 1e6;
            stats.visionMs += (System.nanoTime() - t1) / 1e6;
        }
        stats.images = images.size();

        // 4. prefill only this turn's tokens
        if (turns == 0) {
            engine.rewind(0); // a new conversation owns the cache from position 0
        }
        stats.reusedTokens = used;
        stats.promptTokens = ids.length;
        long t0 = System.nanoTime();
        float[] logits = feed(ids, rows.isEmpty() ? null : rows.toArray(new float[0][]), layout.hasBlocks() ? blocks : null);
        stats.prefillMs = (System.nanoTime() - t0) / 1e6;
        stats.prefillTokensPerS = ids.length / Math.max(stats.prefillMs / 1e3, 1e-9);
        for (long id : ids) {
            history.add(id);
        }
        pending.clear();

        // 5. decode
        List<Long> generated = new ArrayList<>();
        String finish = "length";
        long tDecode = System.nanoTime();
        for (int step = 0; step < maxNewTokens; step++) {
            double[] scores = new double[logits.length]; // [V] float64, as generate_step's logits.astype(np.float64)
            for (int i = 0; i < scores.length; i++) {
                scores[i] = logits[i];
            }
            for (LogitsProcessor processor : processors) {
                processor.process(scores, history);
            }
            long token = sampler.sample(scores);
            if (step == 0) {
                stats.timeToFirstTokenMs = (System.nanoTime() - start) / 1e6;
            }
            if (stopIds.contains(token)) {
                finish = "eos";
                break;
            }
            generated.add(token);
            history.add(token);
            if (listener != null) {
                listener.onToken(token);
            }
            if (step == maxNewTokens - 1 || used + ids.length + generated.size() >= engine.maxContext()) {
                pending.add(token); // fed at the start of the next turn
                break;
            }
            logits = feed(new long[] {token}, null, null);
        }
        double decodeS = (System.nanoTime() - tDecode) / 1e9;
        stats.decodeTokens = generated.size();
        stats.decodeMs = decodeS * 1e3;
        stats.decodeTokensPerS = decodeS > 0 && !generated.isEmpty() ? generated.size() / decodeS : 0.0;
        turns++;
        this.images += images.size();
        return new GenerationResult(generated, finish, stats);
    }

    private float[] feed(long[] ids, float[][] features, int[] blocks) {
        fedTokens += ids.length;
        return engine.forward(ids, features, blocks);
    }

    private static long[] concat(List<Long> head, long[] tail) {
        long[] out = new long[head.size() + tail.length];
        for (int i = 0; i < head.size(); i++) {
            out[i] = head.get(i);
        }
        System.arraycopy(tail, 0, out, head.size(), tail.length);
        return out;
    }

    /** Token ids sampled but not yet fed (the last token of a turn that ended on its budget). */
    public List<Long> pending() {
        return new ArrayList<>(pending);
    }

    public int turns() {
        return turns;
    }
}
