package org.edgevlm.core;

/** Receives each generated token as soon as it is sampled (the app decodes and streams the text). */
public interface TokenListener {
    void onToken(long tokenId);
}
