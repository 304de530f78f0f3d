package org.edgevlm.core;

/** Figures of one turn (runtime/results.py GenerationStats): time to first token split into its stages. */
public final class GenerationStats {
    public int images;
    public double slicingMs; // resize + normalise + patchify
    public double visionMs; // vision encoder
    public int promptTokens; // this turn's tokens, image placeholders included
    public int reusedTokens; // earlier turns already in the KV cache
    public double prefillMs;
    public double prefillTokensPerS;
    public double timeToFirstTokenMs;
    public int decodeTokens;
    public double decodeMs;
    public double decodeTokensPerS;

    @Override
    public String toString() {
        return String.format("TTFT %.0f ms (slicing %.0f, vision %.0f, prefill %.0f ms for %d tokens) | decode %d tokens, %.1f tok/s",
                timeToFirstTokenMs, slicingMs, visionMs, prefillMs, promptTokens, decodeTokens, decodeTokensPerS);
    }
}
