package org.edgevlm.core;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Vision-graph inputs computed per chunk from its patch grid (processing/vision_inputs.py). The vision part's
 * {@code binding.derived_inputs} names which graph input is which kind; the parameters come from the manifest's
 * {@code vision.params}. {@link #compute} is the dispatcher the app calls, as Python's {@code derived_inputs}.
 */
public final class VisionInputs {
    /** Every kind this core computes (processing/vision_inputs.py DERIVED). */
    public static final List<String> KINDS = Arrays.asList("bucketed_position_ids", "packed_attention_segments",
            "packed_reverse_index", "packed_rotary_cos", "packed_rotary_sin", "packed_window_index",
            "packed_window_segments", "sincos_2d_keys", "window_order_2x2", "window_order_2x2_after_merge");

    private VisionInputs() {
    }

    /** One computed input: int64 or float32 values (the other is null), row-major with {@link #shape}. */
    public static final class Derived {
        public final long[] shape;
        public final long[] int64;
        public final float[] float32;

        Derived(long[] shape, long[] int64, float[] float32) {
            this.shape = shape;
            this.int64 = int64;
            this.float32 = float32;
        }
    }

    /** The input of kind {@code kind} for chunks of grids {@code tgtSizes}, padded to {@code maxPatches} patches
     * (packed kinds: {@code tgtSizes} are the images' (t, h, w) grids, {@code maxPatches} the call's patch count). */
    public static Derived compute(String kind, int[][] tgtSizes, int maxPatches, Map<String, Object> params) {
        long batch = tgtSizes.length;
        if (kind.startsWith("packed_") && KINDS.contains(kind)) {
            return packed(kind, new PackedVitTables(tgtSizes, maxPatches, params));
        }
        switch (kind) {
            case "bucketed_position_ids":
                return new Derived(new long[] {batch, maxPatches},
                        bucketedPositionIds(tgtSizes, maxPatches, param(params, "position_table_side", kind)), null);
            case "sincos_2d_keys": {
                int dim = param(params, "key_pos_dim", kind);
                return new Derived(new long[] {batch, maxPatches, dim}, null, sincos2dKeys(tgtSizes, dim, maxPatches));
            }
            case "window_order_2x2":
                return new Derived(new long[] {batch, maxPatches}, windowOrders(tgtSizes, maxPatches, 1), null);
            case "window_order_2x2_after_merge":
                return new Derived(new long[] {batch, maxPatches}, windowOrders(tgtSizes, maxPatches, 2), null);
            default:
                throw new BundleException("the vision part asks for derived input kind " + Py.repr(kind) + ", which this "
                        + "app does not know (it knows " + String.join(", ", KINDS) + "). Update the app or re-export the bundle.");
        }
    }

    private static Derived packed(String kind, PackedVitTables t) {
        long n = t.patches;
        switch (kind) {
            case "packed_rotary_cos":
                return new Derived(new long[] {n, t.headDim}, null, t.cos);
            case "packed_rotary_sin":
                return new Derived(new long[] {n, t.headDim}, null, t.sin);
            case "packed_attention_segments":
                return new Derived(new long[] {n}, t.attentionSegments, null);
            default: {
                long[] table = kind.equals("packed_window_segments") ? t.windowSegments
                        : kind.equals("packed_window_index") ? t.windowIndex : t.reverseIndex;
                if (table == null) {
                    throw new BundleException("the vision part asks for " + Py.repr(kind) + " but vision.params has no "
                            + "window_tokens. Re-export the bundle.");
                }
                return new Derived(new long[] {table.length}, table, null);
            }
        }
    }

    private static int param(Map<String, Object> params, String key, String kind) {
        Object v = params.get(key);
        if (!(v instanceof Long)) {
            throw new BundleException("the manifest's vision.params has " + key + " = " + Py.repr(v) + ", but derived input "
                    + "kind " + Py.repr(kind) + " needs an integer there. Re-export the bundle.");
        }
        return (int) (long) (Long) v;
    }

    /**
     * Rows of a learned perSide x perSide position table per patch, int64 [B, maxPatches] (padding 0): patch (i, j)
     * of an h x w grid gets floor(perSide*i/h) * perSide + floor(perSide*j/w), the exact buckets.
     */
    public static long[] bucketedPositionIds(int[][] tgtSizes, int maxPatches, int perSide) {
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
     * 2D sin/cos rows of every patch per chunk, float32 [B, maxPatches, dim] zero-padded:
     * concat(emb(col), emb(row)), emb(p) = [sin(p*omega), cos(p*omega)], omega[k] = 1 / 10000^(k / (dim/4)).
     * Computed in float64 and rounded to float32 like numpy (StrictMath: the same on every device; it can differ
     * from numpy's libm by 1 float32 ulp on rare values, which the golden test bounds).
     */
    public static float[] sincos2dKeys(int[][] tgtSizes, int dim, int maxPatches) {
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

    /**
     * Per-chunk 2x2-window gather tables, int64 [B, maxPatches]: the (h/shrink) x (w/shrink) grid's row-major
     * cells listed window by window (windows row-major, a window's 4 cells row-major); identity past them, so
     * padded rows stay at the end and a window never mixes real and padded rows (MiniCPM-V 4.6's merges).
     */
    public static long[] windowOrders(int[][] tgtSizes, int maxPatches, int shrink) {
        long[] out = new long[tgtSizes.length * maxPatches];
        for (int b = 0; b < tgtSizes.length; b++) {
            for (int i = 0; i < maxPatches; i++) {
                out[b * maxPatches + i] = i;
            }
            int h = tgtSizes[b][0];
            int w = tgtSizes[b][1];
            if (h % shrink != 0 || w % shrink != 0) {
                throw new ImageException("patch grid " + h + "x" + w + " is not divisible by " + shrink);
            }
            h /= shrink;
            w /= shrink;
            if (h % 2 != 0 || w % 2 != 0) {
                throw new ImageException("a " + h + "x" + w + " patch grid cannot be merged in 2x2 windows: both sides must be even");
            }
            int k = 0;
            for (int wy = 0; wy < h / 2; wy++) {
                for (int wx = 0; wx < w / 2; wx++) {
                    for (int dy = 0; dy < 2; dy++) {
                        for (int dx = 0; dx < 2; dx++) {
                            out[b * maxPatches + k++] = (long) (2 * wy + dy) * w + 2 * wx + dx;
                        }
                    }
                }
            }
        }
        return out;
    }
}
