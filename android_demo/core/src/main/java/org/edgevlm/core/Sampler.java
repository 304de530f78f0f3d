package org.edgevlm.core;

import java.security.SecureRandom;

/**
 * Next-token choice, ported operation by operation from runtime/sampling.py so the same scores and seed give the
 * same tokens. It takes the float64 scores the logits processors left ({@link LogitsProcessor}: suppressed ids,
 * vocabulary cap, repetition penalty); then temperature; a stable descending order (ties: lower id first); top-k;
 * softmax normalised with numpy's pairwise sum; top-p keeps the smallest prefix whose cumulative mass reaches top_p;
 * inverse CDF with one SplitMix64 draw.
 */
public final class Sampler {
    private final SamplingParams params;
    private final SplitMix64 rng;

    public Sampler(SamplingParams params) {
        this.params = params;
        long seed = params.seed != null ? params.seed : new SecureRandom().nextLong();
        this.rng = new SplitMix64(seed);
    }

    /** scores float64 [vocab] (after the logits processors; divided by the temperature in place) -> the next token id. */
    public int sample(double[] scores) {
        int vocab = scores.length;
        if (params.temperature == 0.0) {
            return argmax(scores);
        }
        for (int i = 0; i < vocab; i++) {
            scores[i] /= params.temperature;
        }
        int[] order = StableOrder.descending(scores);
        int n = params.topK > 0 ? Math.min(params.topK, vocab) : vocab;
        double[] probs = new double[n];
        double top = scores[order[0]];
        for (int i = 0; i < n; i++) {
            probs[i] = StrictMath.exp(scores[order[i]] - top);
        }
        divide(probs, n, PairwiseSum.sum(probs, 0, n));
        if (params.topP < 1.0) {
            int keep = Math.min(countBelow(probs, n, params.topP) + 1, n);
            divide(probs, keep, PairwiseSum.sum(probs, 0, keep));
            n = keep;
        }
        double u = rng.uniform();
        // searchsorted(cumsum(probs), u, side="right"): how many cumulative sums are <= u
        int index = 0;
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            acc += probs[i];
            if (acc <= u) {
                index = i + 1;
            } else {
                break; // cumsum is non-decreasing
            }
        }
        return order[Math.min(index, n - 1)];
    }

    /** searchsorted(cumsum(probs[:n]), x) (side left): how many cumulative sums are < x. */
    private static int countBelow(double[] probs, int n, double x) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            acc += probs[i];
            if (!(acc < x)) {
                return i;
            }
        }
        return n;
    }

    private static void divide(double[] values, int n, double by) {
        for (int i = 0; i < n; i++) {
            values[i] /= by;
        }
    }

    /** numpy.argmax: the first maximum. */
    static int argmax(double[] scores) {
        int best = 0;
        for (int i = 1; i < scores.length; i++) {
            if (scores[i] > scores[best]) {
                best = i;
            }
        }
        return best;
    }
}
