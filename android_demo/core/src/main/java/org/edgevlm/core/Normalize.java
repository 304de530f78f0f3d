package org.edgevlm.core;

/**
 * Rescale + normalise through a 256-entry table per channel, bit-identical to processing/normalize.py:
 * {@code float32(float32(v * rescale) - float32(mean)) / float32(std)}, every step rounded to float32.
 */
public final class Normalize {
    private Normalize() {
    }

    /** float32 [3][256]. */
    public static float[][] table(double rescaleFactor, double[] mean, double[] std) {
        float[][] out = new float[3][256];
        for (int c = 0; c < 3; c++) {
            float m = (float) mean[c];
            float s = (float) std[c];
            for (int v = 0; v < 256; v++) {
                float scaled = (float) (v * rescaleFactor); // float64 product, then float32
                out[c][v] = (scaled - m) / s; // float32 arithmetic
            }
        }
        return out;
    }
}
