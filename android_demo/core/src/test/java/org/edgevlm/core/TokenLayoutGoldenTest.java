package org.edgevlm.core;

import java.util.HashMap;
import java.util.Map;

/** Feature positions, token types and attention blocks from token ids against layout_tokens (token_layouts.json). */
public final class TokenLayoutGoldenTest {
    private final Map<String, Object> data;

    public TokenLayoutGoldenTest(Golden golden) {
        data = golden.json("token_layouts.json");
    }

    public void testLayoutsMatchPython() {
        int n = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            Map<String, Object> spec = new HashMap<>();
            spec.put("feature_token", "<f>");
            spec.put("tokens_per_chunk", c.get("tokens_per_chunk"));
            spec.put("attention", c.get("attention"));
            ImageLayout layout = ImageLayout.fromMap(spec);
            long[] prefix = JsonMap.longArray(c.get("prefix_ids"), "prefix_ids");
            long[] suffix = JsonMap.longArray(c.get("suffix_ids"), "suffix_ids");
            long feature = JsonMap.getLong(c, "feature_id", -1);
            int[] chunks = JsonMap.intArray(c.get("chunks_per_image"), "chunks");
            String name = c.get("attention") + " " + c.get("prefix_ids") + "+" + c.get("suffix_ids");
            if (c.containsKey("error")) {
                PromptException ex = Check.raises(PromptException.class,
                        () -> TokenLayout.of(prefix, suffix, feature, layout, chunks), name);
                Check.equal(c.get("message"), ex.getMessage(), name + " message");
            } else {
                TokenLayout t = TokenLayout.of(prefix, suffix, feature, layout, chunks);
                Check.equal(JsonMap.longArray(c.get("input_ids"), "ids"), t.inputIds, name + " ids");
                Check.equal(JsonMap.intArray(c.get("image_positions"), "pos"), t.imagePositions, name + " image positions");
                Check.equal(JsonMap.longArray(c.get("token_type_ids"), "types"), t.tokenTypeIds, name + " token types");
                Check.equal(JsonMap.intArray(c.get("block_ids"), "blocks"), t.blockIds, name + " block ids");
                Check.equal(JsonMap.getLong(c, "prefix_length", -1), t.prefixLength, name + " prefix length");
            }
            n++;
        }
        System.out.println("     token layouts: " + n + " cases equal");
    }
}
