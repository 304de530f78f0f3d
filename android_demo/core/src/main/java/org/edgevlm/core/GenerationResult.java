package org.edgevlm.core;

import java.util.List;

/** The tokens of one answer and why it ended ("eos" | "length"); text stop strings are the app's (it decodes). */
public final class GenerationResult {
    public final List<Long> tokenIds;
    public final String finishReason;
    public final GenerationStats stats;

    GenerationResult(List<Long> tokenIds, String finishReason, GenerationStats stats) {
        this.tokenIds = tokenIds;
        this.finishReason = finishReason;
        this.stats = stats;
    }
}
