package org.edgevlm.core;

/**
 * MiniCPM-V's navit packing (processing/patchify.py): the p x p patches of an image laid side by side in
 * raster order as {@code [3, p, (h/p)*(w/p)*p]}, so a stride-p convolution yields patch tokens in raster order.
 */
public final class Patchify {
    private Patchify() {
    }

    /**
     * Normalised, packed chunk of the w x h rectangle at (x0, y0) of {@code image}: float32 [3][p][rows*cols*p] flat,
     * {@code out[c][y][k*p + dx] = table[c][pixel(x0 + j*p + dx, y0 + i*p + y)]} with k = i*cols + j.
     */
    public static float[] packChunk(RgbImage image, int x0, int y0, int w, int h, int p, float[][] table) {
        int rows = h / p;
        int cols = w / p;
        int length = rows * cols * p;
        float[] out = new float[3 * p * length];
        for (int c = 0; c < 3; c++) {
            float[] lut = table[c];
            for (int y = 0; y < p; y++) {
                int outRow = (c * p + y) * length;
                for (int i = 0; i < rows; i++) {
                    int src = ((y0 + i * p + y) * image.width + x0) * 3 + c;
                    for (int j = 0; j < cols; j++) {
                        int o = outRow + (i * cols + j) * p;
                        int s = src + j * p * 3;
                        for (int dx = 0; dx < p; dx++) {
                            out[o + dx] = lut[image.rgb[s + dx * 3] & 255];
                        }
                    }
                }
            }
        }
        return out;
    }

    /** Normalised CHW float32 [3][h][w] flat (fixed-size processors). */
    public static float[] chw(RgbImage image, float[][] table) {
        int n = image.width * image.height;
        float[] out = new float[3 * n];
        for (int c = 0; c < 3; c++) {
            for (int i = 0; i < n; i++) {
                out[c * n + i] = table[c][image.rgb[i * 3 + c] & 255];
            }
        }
        return out;
    }
}
