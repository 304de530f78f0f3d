package org.edgevlm.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Replays a chat recorded from the Python runtime on a tiny exported bundle (generation.json). The engine and
 * vision encoder here are a replay of that recording: each call must receive exactly the inputs Python fed
 * (ids, block ids, feature rows bit for bit, the pixel checksum of the JVM's own preprocessing) and gets
 * back the logits Python got. Python's turn layer hands its backend explicit positions; the app's engine numbers
 * tokens itself (cache length + text.position_offset), so the replay checks that the two agree. The Generator, sampler, prompt builder, token layout and image processing
 * under test are the real ones; the tokens must equal Python's.
 */
public final class GenerationGoldenTest {
    private final Golden golden;
    private final Map<String, Object> data;

    public GenerationGoldenTest(Golden golden) {
        this.golden = golden;
        data = golden.json("generation.json");
    }

    /** The recorded backend calls of all turns, consumed in order by both fakes. */
    private final class Replay implements InferenceEngine, VisionEncoder {
        final List<Map<String, Object>> calls = new ArrayList<>();
        int next;
        int nPast;
        final int maxContext;
        final int positionOffset;

        Replay(int maxContext, int positionOffset) {
            this.maxContext = maxContext;
            this.positionOffset = positionOffset;
        }

        private Map<String, Object> expect(String op) {
            Check.isTrue(next < calls.size(), "the JVM made more backend calls than Python (" + calls.size() + ")");
            Map<String, Object> call = calls.get(next++);
            Check.equal(call.get("op"), op, "backend call " + (next - 1));
            return call;
        }

        @Override
        public float[][] encode(PreparedImage image) {
            Map<String, Object> call = expect("encode_images");
            Check.equal(call.get("pixel_values_sha256"), Golden.sha256(image.pixelValues()), "vision input pixels");
            List<Object> tgt = JsonMap.getList(call, "tgt_sizes");
            for (int i = 0; i < tgt.size(); i++) {
                Check.equal(JsonMap.intArray(tgt.get(i), "tgt"), image.tgtSizes[i], "tgt_sizes[" + i + "]");
            }
            return golden.rows(call.get("features"));
        }

        @Override
        public int maxContext() {
            return maxContext;
        }

        @Override
        public int nPast() {
            return nPast;
        }

        @Override
        public float[] forward(long[] ids, float[][] features, int[] blockIds) {
            Map<String, Object> call = expect("forward");
            String where = "forward call " + (next - 1);
            Check.equal(JsonMap.longArray(call.get("ids"), "ids"), ids, where + " ids");
            Object blocks = call.get("block_ids");
            Check.equal(blocks == null ? null : Arrays.toString(JsonMap.intArray(blocks, "blocks")),
                    blockIds == null ? null : Arrays.toString(blockIds), where + " block ids");
            Object positions = call.get("positions");
            if (positions != null) {
                long[] implicit = new long[ids.length];
                for (int i = 0; i < ids.length; i++) {
                    implicit[i] = nPast + positionOffset + i;
                }
                Check.equal(JsonMap.longArray(positions, "positions"), implicit, where + " positions (the engine's own)");
            }
            Object rows = call.get("features");
            Check.equal(rows == null, features == null, where + " has image features");
            if (rows != null) {
                float[][] expected = golden.rows(rows);
                Check.equal(expected.length, features.length, where + " feature rows");
                for (int r = 0; r < expected.length; r++) {
                    Check.isTrue(Arrays.equals(expected[r], features[r]), where + " feature row " + r + " differs");
                }
            }
            nPast += ids.length;
            Check.isTrue(nPast <= maxContext, "KV cache overflow");
            return golden.floats(call.get("logits"));
        }

        @Override
        public void rewind(int nKeep) {
            Map<String, Object> call = expect("rewind");
            Check.equal(JsonMap.getLong(call, "n_keep", -1), nKeep, "rewind position");
            nPast = nKeep;
        }

        @Override
        public void close() {
        }
    }

    /** tokenizer.json stand-in: each text must be the one Python tokenised; returns Python's ids. */
    private static final class RecordedTokenizer implements TextTokenizer {
        final List<Map<String, Object>> encoded = new ArrayList<>();
        final Map<String, Object> tokenToId;
        int next;

        RecordedTokenizer(Map<String, Object> tokenToId) {
            this.tokenToId = tokenToId;
        }

        @Override
        public long[] encode(String text) {
            Check.isTrue(next < encoded.size(), "the JVM tokenised more texts than Python");
            Map<String, Object> e = encoded.get(next++);
            Check.equal(e.get("text"), text, "prompt text of the turn");
            return JsonMap.longArray(e.get("ids"), "ids");
        }

        @Override
        public Long tokenToId(String token) {
            Object id = tokenToId.get(token);
            return id == null ? null : JsonMap.asLong(id, token);
        }
    }

    public void testRecordedChatReplaysExactly() {
        Manifest manifest = BundleReader.read(JsonMap.getString(data, "bundle", null), true);
        Check.equal(JsonMap.getLong(data, "max_context", -1), manifest.text.maxContext, "max_context");
        Check.equal(JsonMap.getLong(data, "position_offset", -1), manifest.text.positionOffset, "position offset");
        Replay replay = new Replay(manifest.text.maxContext, manifest.text.positionOffset);
        RecordedTokenizer tokenizer = new RecordedTokenizer(JsonMap.getMap(data, "token_to_id"));
        Generator generator = new Generator(manifest, replay, replay, tokenizer, null);
        Check.equal(new java.util.TreeSet<>(Arrays.asList(box(JsonMap.longArray(data.get("stop_ids"), "stop")))),
                new java.util.TreeSet<>(generator.stopIds()), "stop ids");
        int turnIndex = 0;
        for (Object item : JsonMap.getList(data, "turns")) {
            Map<String, Object> turn = JsonMap.map(item, "turn");
            for (Object call : JsonMap.getList(turn, "calls")) {
                replay.calls.add(JsonMap.map(call, "call"));
            }
            for (Object e : JsonMap.getList(turn, "encoded")) {
                tokenizer.encoded.add(JsonMap.map(e, "encoded"));
            }
            List<RgbImage> images = new ArrayList<>();
            for (Object spec : JsonMap.getList(turn, "images")) {
                Map<String, Object> s = JsonMap.map(spec, "image");
                images.add(PatternImage.make(JsonMap.getInt(s, "width", 0), JsonMap.getInt(s, "height", 0), JsonMap.getInt(s, "seed", 0)));
            }
            GenerationOptions options = new GenerationOptions();
            options.maxNewTokens = JsonMap.getInt(turn, "max_new_tokens", 0);
            options.temperature = JsonMap.getDouble(turn, "temperature", 0);
            options.topK = JsonMap.getInt(turn, "top_k", 0);
            options.topP = JsonMap.getDouble(turn, "top_p", 1);
            options.repetitionPenalty = JsonMap.getDouble(turn, "repetition_penalty", 1);
            options.seed = JsonMap.getLong(turn, "seed", 0);
            List<Long> streamed = new ArrayList<>();
            GenerationResult result = generator.send(JsonMap.getString(turn, "text", null), images, options, streamed::add);
            String where = "turn " + turnIndex;
            Check.equal(Arrays.toString(JsonMap.longArray(turn.get("tokens"), "tokens")), result.tokenIds.toString(), where + " tokens");
            Check.equal(result.tokenIds, streamed, where + " streamed tokens");
            Check.equal(turn.get("finish_reason"), result.finishReason, where + " finish reason");
            Check.equal(Arrays.toString(JsonMap.longArray(turn.get("pending"), "pending")), generator.pending().toString(), where + " pending");
            Check.equal(replay.calls.size(), replay.next, where + ": backend calls made");
            Check.equal(tokenizer.encoded.size(), tokenizer.next, where + ": texts tokenised");
            System.out.println("     " + where + ": " + result.tokenIds.size() + " tokens equal to Python; " + result.stats);
            turnIndex++;
        }
        Check.equal(replay.nPast, sumFed(), "KV positions held after the chat");
    }

    private int sumFed() {
        int total = 0;
        for (Object item : JsonMap.getList(data, "turns")) {
            for (Object call : JsonMap.getList(JsonMap.map(item, "turn"), "calls")) {
                Map<String, Object> c = JsonMap.map(call, "call");
                if ("forward".equals(c.get("op"))) {
                    total += JsonMap.getList(c, "ids").size();
                } else if ("rewind".equals(c.get("op"))) {
                    total = JsonMap.getInt(c, "n_keep", 0);
                }
            }
        }
        return total;
    }

    private static Long[] box(long[] values) {
        Long[] out = new Long[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }
}
