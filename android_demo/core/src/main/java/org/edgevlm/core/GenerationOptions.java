package org.edgevlm.core;

import java.util.Map;

/** Per-turn options; a null field takes the manifest's generation default (as vlm.py's VLM.defaults). */
public final class GenerationOptions {
    public Integer maxNewTokens;
    public Double temperature;
    public Integer topK;
    public Double topP;
    public Double repetitionPenalty;
    public Long seed;

    /** Python: {"max_new_tokens": 256, "temperature": 0, "top_k": 0, "top_p": 1, "repetition_penalty": 1, **generation}. */
    int maxNewTokens(Map<String, Object> defaults) {
        return maxNewTokens != null ? maxNewTokens : JsonMap.getInt(defaults, "max_new_tokens", 256);
    }

    SamplingParams params(Map<String, Object> defaults) {
        return new SamplingParams(
                temperature != null ? temperature : JsonMap.getDouble(defaults, "temperature", 0.0),
                topK != null ? topK : JsonMap.getInt(defaults, "top_k", 0),
                topP != null ? topP : JsonMap.getDouble(defaults, "top_p", 1.0),
                repetitionPenalty != null ? repetitionPenalty : JsonMap.getDouble(defaults, "repetition_penalty", 1.0),
                seed);
    }

    /** The model's recommended sampling (manifest generation.recommended), e.g. for a "creative" switch in the app. */
    public static GenerationOptions recommended(Manifest manifest) {
        Map<String, Object> r = JsonMap.getMap(manifest.generation, "recommended");
        GenerationOptions o = new GenerationOptions();
        o.temperature = r.containsKey("temperature") ? JsonMap.getDouble(r, "temperature", 0) : null;
        o.topK = r.containsKey("top_k") ? JsonMap.getInt(r, "top_k", 0) : null;
        o.topP = r.containsKey("top_p") ? JsonMap.getDouble(r, "top_p", 1) : null;
        o.repetitionPenalty = r.containsKey("repetition_penalty") ? JsonMap.getDouble(r, "repetition_penalty", 1) : null;
        return o;
    }
}
