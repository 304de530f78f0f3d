package org.edgevlm.core;

/**
 * The decoder side of a backend (runtime/backend.py Backend): embeds tokens, splices image features in,
 * runs the decoder over a KV cache preallocated for {@link #maxContext()} tokens and returns logits.
 * The Android app implements it with ONNX Runtime (OrtEngine.kt); tests replay a recording.
 *
 * <p>Mask convention: {@code blockIds[t] = -1} attends causally; tokens sharing a block id {@code k >= 0}
 * also attend to each other both ways. {@code blockIds == null} means all causal.
 */
public interface InferenceEngine extends AutoCloseable {
    /** KV cache capacity in tokens, allocated once. */
    int maxContext();

    /** Tokens currently held in the KV cache. */
    int nPast();

    /**
     * Appends {@code ids.length} tokens to the KV cache and returns float32 logits [vocab] of the last position.
     *
     * @param features rows [nImageTokens][hidden] replacing, in order, the embeddings where ids == image token id; or null
     * @param blockIds [T] or null (causal)
     */
    float[] forward(long[] ids, float[][] features, int[] blockIds);

    /** Forgets every cached position from {@code nKeep} on ({@code nKeep <= nPast()}). */
    void rewind(int nKeep);

    @Override
    void close();
}
