package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Behaviour the golden files do not pin: the JSON parser, Python string helpers, stop-at-eos, context overflow. */
public final class CoreUnitTest {
    public CoreUnitTest(Golden golden) {
    }

    public void testJsonParsesEscapesNumbersAndNesting() {
        Object v = Json.parse("{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\\n\"], \"b\": {}, \"big\": 18446744073709551615}");
        Map<String, Object> m = JsonMap.map(v, "root");
        List<Object> a = JsonMap.getList(m, "a");
        Check.equal(1L, a.get(0), "int");
        Check.equal(-2500.0, a.get(1), "float");
        Check.equal(Boolean.TRUE, a.get(2), "bool");
        Check.equal(null, a.get(3), "null");
        Check.equal("x\u00e9\ud83d\ude00\n", a.get(4), "escapes and surrogate pair");
        Check.equal(1.8446744073709552e19, m.get("big"), "integer beyond 64 bits");
        for (String bad : new String[] {"{\"a\": 1,}", "[1 2]", "{\"a\" 1}", "\"unterminated", "01x", "{} extra"}) {
            Check.raises(IllegalArgumentException.class, () -> Json.parse(bad), "invalid JSON " + bad);
        }
    }

    public void testPythonStringHelpers() {
        Check.equal("a b", Py.strip("\u00a0\t a b\u3000\n"), "strip uses Python's whitespace");
        Check.equal("x{y}1", Py.format("x{{y}}{n}", "n", "1"), "format");
        Check.equal("'it\\'s\"'", Py.repr("it's\""), "repr with both quotes");
        Check.equal("\"it's\"", Py.repr("it's"), "repr picks double quotes");
        Check.equal("('a', 'b')", Py.reprTuple("a", "b"), "tuple repr");
        Check.equal(2L, Py.roundHalfEven(2.5), "banker's rounding");
        Check.equal(-2L, Py.roundHalfEven(-2.5), "banker's rounding negative");
    }

    /** A scripted engine whose logits make a given token the argmax at each step. */
    private static final class Scripted implements InferenceEngine {
        final long[] script;
        int step;
        int nPast;
        final int maxContext;
        final List<int[]> blocksSeen = new ArrayList<>();

        Scripted(int maxContext, long... script) {
            this.maxContext = maxContext;
            this.script = script;
        }

        public int maxContext() {
            return maxContext;
        }

        public int nPast() {
            return nPast;
        }

        public float[] forward(long[] ids, float[][] features, int[] blockIds) {
            blocksSeen.add(blockIds);
            nPast += ids.length;
            float[] logits = new float[16];
            logits[(int) script[Math.min(step++, script.length - 1)]] = 5f;
            return logits;
        }

        public void rewind(int nKeep) {
            nPast = nKeep;
        }

        public void close() {
        }
    }

    private static Manifest textOnlyManifest() {
        return textOnlyManifest("causal");
    }

    private static Manifest textOnlyManifest(String attention) {
        String json = "{\"schema_version\": 1, \"format\": \"onnx\", \"family\": \"x\", \"attention\": \"causal\", \"text\": {},"
                + " \"vision\": {}, \"processor\": {}, \"layout\": {\"feature_token\": \"<f>\", \"attention\": \"" + attention
                + "\"}, \"chat_template\": {}, \"tokenizer\": {\"eos_ids\": [7], \"image_token_id\": 9}, \"parts\": {},"
                + " \"files\": {}}";
        return Manifest.fromJson(Json.parse(json), "test");
    }

    /** A prefix-attention layout (PaliGemma) sends block ids with the prompt and none with decode steps. */
    public void testGeneratorPassesBlockIdsOnlyWhenTheLayoutHasThem() {
        Scripted prefix = new Scripted(64, 4, 5);
        GenerationOptions two = new GenerationOptions();
        two.maxNewTokens = 2;
        new Generator(textOnlyManifest("prefix"), prefix, img -> new float[0][], TOKENS, null).send("hi", List.of(), two, null);
        Check.equal("[0, 0, 0]", java.util.Arrays.toString(prefix.blocksSeen.get(0)), "prompt block ids");
        Check.equal(null, prefix.blocksSeen.get(1), "decode step block ids");
        Scripted causal = new Scripted(64, 4, 5);
        new Generator(textOnlyManifest("causal"), causal, img -> new float[0][], TOKENS, null).send("hi", List.of(), two, null);
        Check.equal(null, causal.blocksSeen.get(0), "causal prompt sends no block ids");
    }

    private static final TextTokenizer TOKENS = new TextTokenizer() {
        public long[] encode(String text) {
            return new long[] {1, 2, 3};
        }

        public Long tokenToId(String token) {
            return token.equals("<f>") ? 9L : null;
        }
    };

    public void testGeneratorStopsAtEosAndKeepsNoPending() {
        Scripted engine = new Scripted(64, 4, 5, 7, 6);
        Generator g = new Generator(textOnlyManifest(), engine, img -> new float[0][], TOKENS, null);
        List<Long> streamed = new ArrayList<>();
        GenerationResult r = g.send("hi", List.of(), null, streamed::add);
        Check.equal("[4, 5]", r.tokenIds.toString(), "tokens before eos");
        Check.equal("eos", r.finishReason, "finish reason");
        Check.equal(streamed, r.tokenIds, "streamed");
        Check.equal(3 + 2, engine.nPast(), "prompt + two fed tokens");
        Check.isTrue(g.pending().isEmpty(), "nothing pending after eos");
    }

    /** The image placeholder id (manifest tokenizer.image_token_id) is never sampled, as vlm.py's suppress_ids. */
    public void testGeneratorNeverSamplesTheImageToken() {
        GenerationOptions two = new GenerationOptions();
        two.maxNewTokens = 2;
        GenerationResult r = new Generator(textOnlyManifest(), new Scripted(64, 9, 5), img -> new float[0][], TOKENS, null)
                .send("hi", List.of(), two, null);
        Check.equal("[0, 5]", r.tokenIds.toString(), "the scripted image token 9 is replaced by the next best id");
    }

    public void testGeneratorRefusesPromptsOverTheContext() {
        Generator g = new Generator(textOnlyManifest(), new Scripted(3, 4), img -> new float[0][], TOKENS, null);
        PromptException ex = Check.raises(PromptException.class, () -> g.send("hi", List.of(), null, null), "overflow");
        Check.isTrue(ex.getMessage().contains("more than the context of 3"), ex.getMessage());
    }

    public void testSamplingParamsAreChecked() {
        Check.raises(EdgeVlmException.class, () -> new SamplingParams(-1, 0, 1, 1, 0L), "negative temperature");
        Check.raises(EdgeVlmException.class, () -> new SamplingParams(1, 0, 0, 1, 0L), "top_p 0");
    }
}
