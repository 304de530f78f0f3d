package org.edgevlm.core;

/**
 * Where the image features go and how the model attends, from token ids (processing/prompt.py layout_tokens).
 * Tokenisation itself is the app's job (the bundle's tokenizer.json); this takes its ids.
 *
 * <p>Block ids: -1 = causal; tokens sharing a block id >= 0 also attend to each other both ways
 * ("prefix": the whole prompt is block 0; "image_blocks": each contiguous run of feature tokens is a block).
 */
public final class TokenLayout {
    public final long[] inputIds; // [T] prefix then suffix
    public final int[] imagePositions; // [K] feature rows in order
    public final long[] tokenTypeIds; // [T] HF meaning (PaliGemma 1 = suffix; Gemma 3 1 = image token)
    public final int[] blockIds; // [T]
    public final int prefixLength;

    private TokenLayout(long[] inputIds, int[] imagePositions, long[] tokenTypeIds, int[] blockIds, int prefixLength) {
        this.inputIds = inputIds;
        this.imagePositions = imagePositions;
        this.tokenTypeIds = tokenTypeIds;
        this.blockIds = blockIds;
        this.prefixLength = prefixLength;
    }

    /** True when any token has a block id, i.e. the forward call needs block ids (else plain causal). */
    public boolean hasBlocks() {
        for (int b : blockIds) {
            if (b >= 0) {
                return true;
            }
        }
        return false;
    }

    /**
     * @param chunksPerImage vision chunks per image; when non-empty the count of feature tokens must be
     *                       {@code sum * tokensPerChunk} (a user text holding the feature token would shift features)
     */
    public static TokenLayout of(long[] prefixIds, long[] suffixIds, long featureId, ImageLayout layout, int[] chunksPerImage) {
        int length = prefixIds.length + suffixIds.length;
        long[] ids = new long[length];
        System.arraycopy(prefixIds, 0, ids, 0, prefixIds.length);
        System.arraycopy(suffixIds, 0, ids, prefixIds.length, suffixIds.length);
        int k = 0;
        for (long id : ids) {
            if (id == featureId) {
                k++;
            }
        }
        int[] positions = new int[k];
        for (int t = 0, j = 0; t < length; t++) {
            if (ids[t] == featureId) {
                positions[j++] = t;
            }
        }
        if (chunksPerImage.length > 0) {
            long expected = 0;
            for (int c : chunksPerImage) {
                expected += c;
            }
            expected *= layout.tokensPerChunk;
            if (k != expected) {
                throw new PromptException("the prompt has " + k + " " + Py.repr(layout.featureToken) + " tokens where the "
                        + "images need " + expected + "; remove that token from the text");
            }
        }
        long[] tokenTypes = new long[length];
        int[] blocks = new int[length];
        java.util.Arrays.fill(blocks, -1);
        int prefixLength = 0;
        if (layout.attention.equals("prefix")) {
            prefixLength = prefixIds.length;
            for (int t = prefixLength; t < length; t++) {
                tokenTypes[t] = 1;
            }
            for (int t = 0; t < prefixLength; t++) {
                blocks[t] = 0;
            }
        } else if (layout.attention.equals("image_blocks")) {
            int run = -1;
            for (int t = 0; t < length; t++) {
                boolean feature = ids[t] == featureId;
                if (feature) {
                    if (t == 0 || ids[t - 1] != featureId) {
                        run++; // a new contiguous run of feature tokens: one image
                    }
                    tokenTypes[t] = 1;
                    blocks[t] = run;
                }
            }
        }
        return new TokenLayout(ids, positions, tokenTypes, blocks, prefixLength);
    }

    public static TokenLayout of(long[] ids, long featureId, ImageLayout layout, int[] chunksPerImage) {
        return of(ids, new long[0], featureId, layout, chunksPerImage);
    }
}
