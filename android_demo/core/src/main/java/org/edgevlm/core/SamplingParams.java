package org.edgevlm.core;

/** Sampling settings (runtime/sampling.py SamplingParams); the Generator turns the repetition penalty into a logits processor. */
public final class SamplingParams {
    public final double temperature; // 0 = greedy
    public final int topK; // 0 = off
    public final double topP; // 1 = off
    public final double repetitionPenalty; // 1 = off
    public final Long seed; // null = random

    public SamplingParams(double temperature, int topK, double topP, double repetitionPenalty, Long seed) {
        if (temperature < 0 || topK < 0 || !(topP > 0 && topP <= 1) || repetitionPenalty <= 0) {
            throw new EdgeVlmException("invalid sampling settings (temperature=" + temperature + ", top_k=" + topK
                    + ", top_p=" + topP + ", repetition_penalty=" + repetitionPenalty + "): need temperature >= 0, "
                    + "top_k >= 0, 0 < top_p <= 1, repetition_penalty > 0");
        }
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.repetitionPenalty = repetitionPenalty;
        this.seed = seed;
    }

    public static SamplingParams greedy() {
        return new SamplingParams(0.0, 0, 1.0, 1.0, 0L);
    }
}
