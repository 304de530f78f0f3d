package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * SplitMix64, the logits processors and the sampler against runtime/generate.py + runtime/sampling.py for fixed
 * logits and seeds (sampler.json): each step as generate_step runs it (float64 scores, processors, sampler).
 */
public final class SamplerGoldenTest {
    private final Golden golden;
    private final Map<String, Object> data;

    public SamplerGoldenTest(Golden golden) {
        this.golden = golden;
        data = golden.json("sampler.json");
    }

    public void testSplitMix64Stream() {
        for (Object item : JsonMap.getList(data, "splitmix64")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            SplitMix64 rng = new SplitMix64(Long.parseUnsignedLong(JsonMap.getString(c, "seed", null)));
            for (Object u64 : JsonMap.getList(c, "u64")) {
                Check.equal((String) u64, Long.toUnsignedString(rng.nextU64()), "seed " + c.get("seed") + " u64");
            }
            for (Object u : JsonMap.getList(c, "uniform")) {
                Check.equal(JsonMap.asDouble(u, "u"), rng.uniform(), "seed " + c.get("seed") + " uniform");
            }
        }
    }

    public void testSampledTokensMatchPython() {
        int n = 0;
        int tokens = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            Map<String, Object> p = JsonMap.getMap(c, "params");
            float[][] steps = golden.rows(c.get("logits"));
            SamplingParams params = new SamplingParams(JsonMap.getDouble(p, "temperature", 0), JsonMap.getInt(p, "top_k", 0),
                    JsonMap.getDouble(p, "top_p", 1), JsonMap.getDouble(p, "repetition_penalty", 1), JsonMap.getLong(p, "seed", 0));
            Sampler sampler = new Sampler(params);
            List<LogitsProcessor> processors = processors(JsonMap.getList(c, "processors"));
            List<Long> history = new ArrayList<>();
            for (long id : JsonMap.longArray(c.get("history"), "history")) {
                history.add(id);
            }
            long[] expected = JsonMap.longArray(c.get("tokens"), "tokens");
            long[] actual = new long[expected.length];
            for (int s = 0; s < expected.length; s++) {
                double[] scores = new double[steps[s].length];
                for (int i = 0; i < scores.length; i++) {
                    scores[i] = steps[s][i];
                }
                for (LogitsProcessor processor : processors) {
                    processor.process(scores, history);
                }
                actual[s] = sampler.sample(scores);
                history.add(actual[s]);
            }
            Check.equal(expected, actual, "vocab " + steps[0].length + " " + p + " " + c.get("processors"));
            n++;
            tokens += expected.length;
        }
        System.out.println("     sampler: " + n + " cases, " + tokens + " tokens equal to Python");
        Check.isTrue(n >= 48, "expected the sampler and processor cases");
    }

    /** The processors a case names, {"kind": ..., parameter}, in order. */
    private static List<LogitsProcessor> processors(List<Object> specs) {
        List<LogitsProcessor> out = new ArrayList<>();
        for (Object item : specs) {
            Map<String, Object> s = JsonMap.map(item, "processor");
            String kind = JsonMap.getString(s, "kind", null);
            switch (kind) {
                case "suppress_tokens":
                    out.add(LogitsProcessor.suppressTokens(JsonMap.longArray(s.get("ids"), "ids")));
                    break;
                case "cap_vocabulary":
                    out.add(LogitsProcessor.capVocabulary(JsonMap.getInt(s, "limit", 0)));
                    break;
                case "penalize_repetition":
                    out.add(LogitsProcessor.penalizeRepetition(JsonMap.getDouble(s, "penalty", 1)));
                    break;
                default:
                    throw new Check.Failure("unknown logits processor " + kind + " in sampler.json");
            }
        }
        return out;
    }
}
