package org.edgevlm.core;

/** The vision side of a backend: one prepared image -> feature rows [nChunks * tokensPerChunk][hidden], chunk-major. */
public interface VisionEncoder {
    float[][] encode(PreparedImage image);
}
