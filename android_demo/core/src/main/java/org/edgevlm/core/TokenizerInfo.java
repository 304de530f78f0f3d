package org.edgevlm.core;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/** The manifest's {@code tokenizer} section (manifest/schema.py TokenizerInfo): the one home of every token id the runtime needs. */
public final class TokenizerInfo {
    static final List<String> REQUIRED = Arrays.asList("file", "vocab_size");
    static final List<String> OPTIONAL = Arrays.asList("eos_ids", "eos_tokens", "image_token_id");

    public final String file; // tokenizer.json, inside the bundle (null only in a manifest the bundle reader refuses)
    public final int vocabSize; // ids from here on are embedding-table padding, never generated
    public final List<Long> eosIds;
    public final List<String> eosTokens;
    public final Long imageTokenId; // the placeholder whose rows receive image features; null: none

    private TokenizerInfo(Section s) {
        file = s.string("file", null);
        vocabSize = s.integer("vocab_size", 0);
        eosIds = Collections.unmodifiableList(s.longs("eos_ids"));
        eosTokens = Collections.unmodifiableList(s.strings("eos_tokens", false));
        imageTokenId = s.nullableLong("image_token_id");
    }

    static TokenizerInfo read(Object json, String where) {
        return new TokenizerInfo(Section.read(json, "TokenizerInfo", where, REQUIRED, OPTIONAL));
    }
}
