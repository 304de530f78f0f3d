package org.edgevlm.core;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Rewrites the float64 scores [vocab] of one step in place, seeing the conversation's token ids
 * (runtime/generate.py LogitsProcessor). The Generator runs, in order: {@link #suppressTokens} (the image
 * placeholder), {@link #capVocabulary} (embedding-table padding), {@link #penalizeRepetition}; then the
 * {@link Sampler} picks.
 */
@FunctionalInterface
public interface LogitsProcessor {
    void process(double[] scores, List<Long> history);

    /** Never sample these ids (the image placeholder: its rows only ever carry image features). */
    static LogitsProcessor suppressTokens(long... ids) {
        long[] copy = ids.clone();
        return (scores, history) -> {
            for (long id : copy) {
                if (id >= 0 && id < scores.length) {
                    scores[(int) id] = Double.NEGATIVE_INFINITY;
                }
            }
        };
    }

    /** Never sample ids from {@code limit} on (padding rows of a table grown to a multiple of 64). */
    static LogitsProcessor capVocabulary(int limit) {
        return (scores, history) -> {
            for (int id = Math.max(limit, 0); id < scores.length; id++) {
                scores[id] = Double.NEGATIVE_INFINITY;
            }
        };
    }

    /** transformers' repetition penalty: scores of seen ids divided (if > 0) or multiplied by {@code penalty}. */
    static LogitsProcessor penalizeRepetition(double penalty) {
        return (scores, history) -> {
            Set<Long> seen = new HashSet<>(history);
            for (long id : seen) {
                double v = scores[(int) id];
                scores[(int) id] = v > 0 ? v / penalty : v * penalty;
            }
        };
    }
}
