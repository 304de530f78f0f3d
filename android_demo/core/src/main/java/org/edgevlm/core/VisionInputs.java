package org.edgevlm.core;

/**
 * The MiniCPM-V vision graph's derived inputs, computed per chunk from its patch grid (runtime/vision_inputs.py).
 * The vision part's manifest entry names which graph input is which ({@code extra.derived_inputs}).
 */
public final class VisionInputs {
    private VisionInputs() {
    }

    /** numpy.arange(start, stop, step) for float64: element i >= 2 is start + i * ((start + step) - start). */
    static double[] arange(double start, double stop, double step) {
        int n = (int) Math.max(0, Math.ceil((stop - start) / step));
        double[] out = new double[n];
        if (n > 0) {
            out[0] = start;
        }
        if (n > 1) {
            out[1] = start + step;
        }
        double delta = n > 1 ? out[1] - out[0] : step;
        for (int i = 2; i < n; i++) {
            out[i] = start + i * delta;
        }
        return out;
    }

    /**
     * Rows of the learned position table per patch, int64 [B, maxPatches] (padding 0): patch (i, j) of an h x w
     * grid gets bucket(i/h) * perSide + bucket(j/w), bucketing float32 fractions against boundaries k/perSide.
     */
    public static long[] navitPositionIds(int[][] tgtSizes, int maxPatches, int perSide) {
        double[] b64 = arange(1.0 / perSide, 1.0, 1.0 / perSide);
        float[] boundaries = new float[b64.length];
        for (int i = 0; i < b64.length; i++) {
            boundaries[i] = (float) b64[i];
        }
        long[] out = new long[tgtSizes.length * maxPatches];
        for (int b = 0; b < tgtSizes.length; b++) {
            int h = tgtSizes[b][0];
            int w = tgtSizes[b][1];
            int[] rows = buckets(h, boundaries);
            int[] cols = buckets(w, boundaries);
            for (int i = 0; i < h; i++) {
                for (int j = 0; j < w; j++) {
                    out[b * maxPatches + i * w + j] = (long) rows[i] * perSide + cols[j];
                }
            }
        }
        return out;
    }

    /** searchsorted(boundaries, min(arange(n) * float32(1/n), float32(1 - 1e-6)), side="right"), in float32. */
    private static int[] buckets(int n, float[] boundaries) {
        float step = (float) (1.0 / n);
        float cap = (float) (1.0 - 1e-6);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            float coord = Math.min((float) i * step, cap);
            int count = 0;
            while (count < boundaries.length && boundaries[count] <= coord) {
                count++;
            }
            out[i] = count;
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
