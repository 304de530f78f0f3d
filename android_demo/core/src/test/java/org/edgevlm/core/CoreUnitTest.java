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
        return textOnlyManifest(attention, 16);
    }

    /** A schema-2 manifest of a text-only bundle: no vision section, no parts or files needed by the Generator. */
    private static Manifest textOnlyManifest(String attention, int vocabSize) {
        String json = "{\"schema_version\": 2, \"format\": \"onnx\", \"family\": \"x\", \"text\": {\"arch\": \"x\","
                + " \"hidden_size\": 8, \"num_layers\": 1, \"num_heads\": 1, \"num_kv_heads\": 1, \"head_dim\": 8,"
                + " \"vocab_size\": 16, \"max_context\": 64}, \"vision\": null, \"processor\": {},"
                + " \"layout\": {\"feature_token\": \"<f>\", \"attention\": \"" + attention + "\"}, \"chat_template\": {},"
                + " \"tokenizer\": {\"file\": \"tokenizer.json\", \"vocab_size\": " + vocabSize + ", \"eos_ids\": [7],"
                + " \"image_token_id\": 9}, \"parts\": {}, \"files\": {}}";
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

    /** The image placeholder id (manifest tokenizer.image_token_id) is never sampled (generate.py suppress_tokens). */
    public void testGeneratorNeverSamplesTheImageToken() {
        GenerationOptions two = new GenerationOptions();
        two.maxNewTokens = 2;
        GenerationResult r = new Generator(textOnlyManifest(), new Scripted(64, 9, 5), img -> new float[0][], TOKENS, null)
                .send("hi", List.of(), two, null);
        Check.equal("[0, 5]", r.tokenIds.toString(), "the scripted image token 9 is replaced by the next best id");
    }

    /** Ids from the tokenizer's vocabulary size on are embedding-table padding: never sampled (cap_vocabulary). */
    public void testGeneratorNeverSamplesPaddingIds() {
        GenerationOptions two = new GenerationOptions();
        two.maxNewTokens = 2;
        GenerationResult r = new Generator(textOnlyManifest("causal", 12), new Scripted(64, 13, 5), img -> new float[0][],
                TOKENS, null).send("hi", List.of(), two, null);
        Check.equal("[0, 5]", r.tokenIds.toString(), "the scripted padding id 13 is replaced by the next best id");
    }

    /** The decoder binding is checked against the text model: one mask per layer, each among the masks. */
    public void testDecoderBindingIsChecked() {
        TextInfo text = textOnlyManifest().text; // one layer
        String kv = "\"kv\": {\"past_key\": \"pk.%d\", \"past_value\": \"pv.%d\", \"present_key\": \"k.%d\","
                + " \"present_value\": \"v.%d\"}";
        DecoderBinding ok = DecoderBinding.of(part("{" + kv + ", \"masks\": {\"full\": null, \"local\": 4},"
                + " \"layer_masks\": [\"local\"]}"), text);
        Check.equal("pv.0", ok.kvName("past_value", 0), "kv name");
        Check.equal(7, ok.firstVisibleKey("local", 10), "a windowed layer sees the last 4 rows (7..10)");
        Check.equal(0, ok.firstVisibleKey("full", 10), "a full mask sees every row");
        Check.equal("logits_index", ok.logitsIndex, "default logits index input");
        DecoderBinding unsaid = DecoderBinding.of(part("{" + kv + ", \"masks\": {\"local\": 4}}"), text);
        Check.equal(0, unsaid.firstVisibleKey(unsaid.layerMasks.get(0), 10), "no layer_masks: every layer bound in full");
        for (String bad : new String[] {"{\"masks\": {}}", "{" + kv + "}", "{" + kv + ", \"masks\": {\"m\": null}, \"layer_masks\": [\"m\", \"m\"]}",
                "{" + kv + ", \"masks\": {\"m\": null}, \"layer_masks\": [\"other\"]}", "{" + kv + ", \"masks\": {\"m\": \"4\"}}"}) {
            BundleException ex = Check.raises(BundleException.class, () -> DecoderBinding.of(part(bad), text), bad);
            Check.isTrue(ex.getMessage().startsWith("the decoder part's binding "), ex.getMessage());
        }
    }

    private static Part part(String binding) {
        return Part.read(Json.parse("{\"file\": \"d.onnx\", \"format\": \"onnx\", \"binding\": " + binding + "}"), "test");
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
