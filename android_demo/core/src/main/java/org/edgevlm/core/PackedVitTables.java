package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The tables of a packed native-resolution ViT (Qwen2-VL / Qwen2.5-VL vision), ported from
 * edgevlm/processing/packed_vit.py: for images of grids (t, h, w) patches, the 2-D rotary cos/sin of every patch
 * (attention order), the frame segment of every patch, and for windowed towers the window segments, the window
 * order of merged tokens and its inverse. Padded to {@code patches} with a segment of its own and identity order
 * (fixed-shape vision parts). Rotary angles are float32 products as numpy computes them; cos/sin are computed in
 * float64 and rounded (numpy's float32 cos/sin may differ in the last bit; the golden test bounds it).
 */
final class PackedVitTables {
    final float[] cos; // [patches, headDim]
    final float[] sin;
    final long[] attentionSegments; // [patches]
    final long[] windowSegments; // [patches], null without windows
    final long[] windowIndex; // [patches / unit], null without windows
    final long[] reverseIndex;
    final int patches;
    final int headDim;

    PackedVitTables(int[][] grids, int patches, Map<String, Object> params) {
        headDim = intParam(params, "head_dim");
        int merge = intParam(params, "merge_size");
        Object window = params.get("window_tokens");
        double theta = JsonMap.asDouble(params.get("rope_theta"), "rope_theta");
        int unit = merge * merge;
        int real = 0;
        for (int[] g : grids) {
            real += g[0] * g[1] * g[2];
        }
        if (patches < real || (patches - real) % unit != 0) {
            throw new BundleException("a vision call of " + real + " patches cannot be padded to " + patches);
        }
        this.patches = patches;
        long[][] positions = positions(grids, merge); // [real][2] (row, col), merge-block order
        float[][] angles = angles(positions, inverseFrequencies(headDim, (float) theta));
        attentionSegments = new long[patches];
        int at = 0;
        long frame = 0;
        for (int[] g : grids) {
            for (int f = 0; f < g[0]; f++, frame++) {
                for (int i = 0; i < g[1] * g[2]; i++) {
                    attentionSegments[at++] = frame;
                }
            }
        }
        java.util.Arrays.fill(attentionSegments, real, patches, frame); // padding: a segment of its own
        int[] order = new int[real]; // patch order the blocks see
        for (int i = 0; i < real; i++) {
            order[i] = i;
        }
        if (window != null) {
            List<long[]> windows = windows(grids, merge, (int) JsonMap.asLong(window, "window_tokens"));
            windowIndex = new long[patches / unit];
            windowSegments = new long[patches];
            int token = 0;
            int patch = 0;
            for (int w = 0; w < windows.size(); w++) {
                for (long t : windows.get(w)) {
                    windowIndex[token++] = t;
                    for (int u = 0; u < unit; u++) {
                        order[patch] = (int) t * unit + u;
                        windowSegments[patch++] = w;
                    }
                }
            }
            java.util.Arrays.fill(windowSegments, real, patches, windows.size());
            reverseIndex = new long[patches / unit];
            for (int i = 0; i < real / unit; i++) {
                reverseIndex[(int) windowIndex[i]] = i;
            }
            for (int i = real / unit; i < patches / unit; i++) {
                windowIndex[i] = i;
                reverseIndex[i] = i;
            }
        } else {
            windowSegments = windowIndex = reverseIndex = null;
        }
        cos = new float[patches * headDim];
        sin = new float[patches * headDim];
        for (int i = 0; i < real; i++) {
            float[] a = angles[order[i]];
            for (int k = 0; k < headDim; k++) {
                cos[i * headDim + k] = (float) Math.cos(a[k % a.length]);
                sin[i * headDim + k] = (float) Math.sin(a[k % a.length]);
            }
        }
    }

    private static int intParam(Map<String, Object> params, String key) {
        return (int) JsonMap.asLong(params.get(key), key);
    }

    /** float32 [headDim/4]: 1 / theta^(2k / (headDim/2)), in float32 as numpy. */
    static float[] inverseFrequencies(int headDim, float theta) {
        int spatial = headDim / 2;
        float[] out = new float[(spatial + 1) / 2];
        for (int k = 0; k < out.length; k++) {
            float exponent = (float) (2 * k) / (float) spatial;
            out[k] = 1.0f / (float) Math.pow(theta, exponent);
        }
        return out;
    }

    /** (row, col) of every patch: merge blocks in raster order, the merge x merge patches of a block adjacent. */
    static long[][] positions(int[][] grids, int merge) {
        List<long[]> out = new ArrayList<>();
        for (int[] g : grids) {
            for (int f = 0; f < g[0]; f++) {
                for (int bi = 0; bi < g[1] / merge; bi++) {
                    for (int bj = 0; bj < g[2] / merge; bj++) {
                        for (int my = 0; my < merge; my++) {
                            for (int mx = 0; mx < merge; mx++) {
                                out.add(new long[] {bi * merge + my, bj * merge + mx});
                            }
                        }
                    }
                }
            }
        }
        return out.toArray(new long[0][]);
    }

    /** float32 angles [n][2F]: (row * f, col * f) as float32 products. */
    private static float[][] angles(long[][] positions, float[] inv) {
        float[][] out = new float[positions.length][2 * inv.length];
        for (int i = 0; i < positions.length; i++) {
            for (int k = 0; k < inv.length; k++) {
                out[i][k] = (float) positions[i][0] * inv[k];
                out[i][inv.length + k] = (float) positions[i][1] * inv[k];
            }
        }
        return out;
    }

    /** Merged-token ids of every window, window by window: {@code side} tokens a side, tiled from the top left. */
    static List<long[]> windows(int[][] grids, int merge, int side) {
        List<long[]> out = new ArrayList<>();
        long offset = 0;
        for (int[] g : grids) {
            int rows = g[1] / merge;
            int cols = g[2] / merge;
            for (int f = 0; f < g[0]; f++) {
                for (int wr = 0; wr < (rows + side - 1) / side; wr++) {
                    for (int wc = 0; wc < (cols + side - 1) / side; wc++) {
                        List<Long> cell = new ArrayList<>();
                        for (int r = wr * side; r < Math.min(rows, (wr + 1) * side); r++) {
                            for (int c = wc * side; c < Math.min(cols, (wc + 1) * side); c++) {
                                cell.add(offset + ((long) f * rows + r) * cols + c);
                            }
                        }
                        out.add(cell.stream().mapToLong(Long::longValue).toArray());
                    }
                }
            }
            offset += (long) g[0] * rows * cols;
        }
        return out;
    }
}
