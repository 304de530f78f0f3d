package org.edgevlm.core;

/**
 * The MiniCPM-V vision graph's derived inputs, computed per chunk from its patch grid (runtime/vision_inputs.py).
 * The vision part's manifest entry names which graph input is which ({@code extra.derived_inputs}).
 */
public final class VisionInputs {
    private VisionInputs() {
    }

    /**
     * Rows of the learned position table per patch, int64 [B, maxPatches] (padding 0): patch (i, j) of an h x w
     * grid gets floor(perSide*i/h) * perSide + floor(perSide*j/w), the exact buckets (runtime/vision_inputs.py).
     */
    public static long[] navitPositionIds(int[][] tgtSizes, int maxPatches, int perSide) {
        long[] out = new long[tgtSizes.length * maxPatches];
        for (int b = 0; b < tgtSizes.length; b++) {
            int h = tgtSizes[b][0];
            int w = tgtSizes[b][1];
            for (int i = 0; i < h; i++) {
                for (int j = 0; j < w; j++) {
                    // floor(perSide * i / h): the exact bucket of i/h among the boundaries k/perSide
                    out[b * maxPatches + i * w + j] = (long) (perSide * i / h) * perSide + (perSide * j / w);
                }
            }
        }
        return out;
    }

    /**
     * The resampler's 2D sin/cos key table per chunk, float32 [B, maxPatches, dim] zero-padded:
     * concat(emb(col), emb(row)), emb(p) = [sin(p*omega), cos(p*omega)], omega[k] = 1 / 10000^(k / (dim/4)).
     * Computed in float64 and rounded to float32 like numpy (StrictMath: the same on every device; it can differ
     * from numpy's libm by 1 float32 ulp on rare values, which the golden test bounds).
     */
    public static float[] resamplerKeyPos(int[][] tgtSizes, int dim, int maxPatches) {
        int quarter = dim / 4;
        double[] omega = new double[quarter];
        for (int k = 0; k < quarter; k++) {
            omega[k] = 1.0 / StrictMath.pow(10000, (double) k / quarter);
        }
        float[] out = new float[tgtSizes.length * maxPatches * dim];
        for (int b = 0; b < tgtSizes.length; b++) {
            int h = tgtSizes[b][0];
            int w = tgtSizes[b][1];
            for (int i = 0; i < h; i++) {
                for (int j = 0; j < w; j++) {
                    int base = (b * maxPatches + i * w + j) * dim;
                    for (int k = 0; k < quarter; k++) {
                        double col = j * omega[k];
                        double row = i * omega[k];
                        out[base + k] = (float) StrictMath.sin(col);
                        out[base + quarter + k] = (float) StrictMath.cos(col);
                        out[base + 2 * quarter + k] = (float) StrictMath.sin(row);
                        out[base + 3 * quarter + k] = (float) StrictMath.cos(row);
                    }
                }
            }
        }
        return out;
    }
}
