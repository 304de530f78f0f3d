package org.edgevlm.core;

/**
 * The bundle's tokenizer.json, as the app provides it (e.g. HF tokenizers through JNI). Special tokens written
 * in the text are parsed as special tokens and no BOS/EOS is added (chat templates put them in the text),
 * like edgevlm/processing/tokenizer.py. Decoding for display stays in the app.
 */
public interface TextTokenizer {
    long[] encode(String text);

    /** The id of a token string, or null when the vocabulary does not have it. */
    Long tokenToId(String token);
}
