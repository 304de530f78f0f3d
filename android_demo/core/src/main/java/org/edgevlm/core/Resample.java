package org.edgevlm.core;

/**
 * Pillow's {@code Image.resize} for 8-bit RGB, bit-exact (libImaging/Resample.c, reimplemented from its algorithm).
 *
 * <p>A separable convolution: two passes, in the order Pillow 13 picks (see {@link #horizontalFirst}); a
 * horizontal-first resize only resamples the source rows the vertical pass will read. Per output pixel the filter weights (support scaled by the downscale factor) are computed in
 * double, normalised to sum 1, then turned into fixed-point integers with 22 fractional bits (32 - 8 - 2: two
 * bits of headroom for negative lobes); accumulation starts at half a unit (rounding) and the result is
 * {@code acc >> 22} clamped to 0..255. Each pass writes 8-bit values, so the intermediate rounding matches too.
 */
public final class Resample {
    static final int PRECISION_BITS = 32 - 8 - 2;

    /** The filters the processors use: bicubic (MiniCPM-V, PaliGemma, InternVL), bilinear (Gemma 3), lanczos (SmolVLM). */
    public enum Filter {
        BICUBIC(2.0), BILINEAR(1.0), LANCZOS(3.0);

        final double support;

        Filter(double support) {
            this.support = support;
        }

        double weight(double x) {
            if (this == LANCZOS) {
                // Pillow's lanczos_filter: a sinc truncated to [-3, 3) (half-open, as in Resample.c)
                return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0;
            }
            if (x < 0.0) {
                x = -x;
            }
            if (this == BILINEAR) {
                return x < 1.0 ? 1.0 - x : 0.0;
            }
            final double a = -0.5; // Pillow's bicubic uses the a = -0.5 (Catmull-Rom-like) kernel
            if (x < 1.0) {
                return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
            }
            if (x < 2.0) {
                return (((x - 5) * x + 8) * x - 4) * a;
            }
            return 0.0;
        }

        public static Filter of(String name) {
            switch (name) {
                case "bicubic":
                    return BICUBIC;
                case "bilinear":
                    return BILINEAR;
                case "lanczos":
                    return LANCZOS;
                default:
                    throw new ImageException("resample filter " + Py.repr(name) + " is not supported by the app's image "
                            + "processor; use bicubic, bilinear or lanczos (re-export the bundle)");
            }
        }

        private static double sinc(double x) {
            if (x == 0.0) {
                return 1.0;
            }
            x = x * Math.PI;
            return StrictMath.sin(x) / x;
        }
    }

    private Resample() {
    }

    /** Fixed-point weights of one axis: output i reads {@code count[i]} inputs from {@code first[i]}. */
    static final class Coefficients {
        final int ksize;
        final int[] first;
        final int[] count;
        final int[] weights; // [outSize * ksize]

        Coefficients(int ksize, int[] first, int[] count, int[] weights) {
            this.ksize = ksize;
            this.first = first;
            this.count = count;
            this.weights = weights;
        }
    }

    static Coefficients coefficients(int inSize, int outSize, Filter filter) {
        // Pillow takes the box edges as C floats: in1 - in0 is a float subtraction before the widening.
        float in0 = 0f;
        float in1 = inSize;
        double scale = (double) (in1 - in0) / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = filter.support * filterScale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] first = new int[outSize];
        int[] count = new int[outSize];
        int[] weights = new int[outSize * ksize];
        double[] k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++) {
            double center = in0 + (xx + 0.5) * scale;
            double ss = 1.0 / filterScale;
            int xmin = (int) (center - support + 0.5); // C cast: truncation toward zero
            if (xmin < 0) {
                xmin = 0;
            }
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) {
                xmax = inSize;
            }
            xmax -= xmin;
            double ww = 0.0;
            for (int x = 0; x < xmax; x++) {
                double w = filter.weight((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++) {
                double v = ww != 0.0 ? k[x] / ww : k[x];
                // round half away from zero into 22 fractional bits
                weights[xx * ksize + x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS))
                        : (int) (0.5 + v * (1 << PRECISION_BITS));
            }
            first[xx] = xmin;
            count[xx] = xmax;
        }
        return new Coefficients(ksize, first, count, weights);
    }

    private static int clip8(int acc) {
        int v = acc >> PRECISION_BITS; // arithmetic shift, as in C on every Pillow platform
        return v < 0 ? 0 : Math.min(v, 255);
    }

    /**
     * Pillow 13's pass order: the vertical pass runs first when the height shrinks by more than twice as many
     * pixels as the width does ({@code h - H > 0 && h - H > 2 * (w - W)}), else horizontal first. Pillow 12 and
     * older always ran horizontal first; results then differ by 1 on some pixels (see the README).
     */
    static boolean horizontalFirst(int inW, int inH, int outW, int outH) {
        int shrinkH = inH - outH;
        return !(shrinkH > 0 && shrinkH > (long) (inW - outW) * 2);
    }

    /** Resizes {@code src} to {@code outW x outH}; the same size returns a copy (as Pillow). */
    public static RgbImage resize(RgbImage src, int outW, int outH, Filter filter) {
        boolean horizontal = outW != src.width;
        boolean vertical = outH != src.height;
        if (!horizontal && !vertical) {
            return new RgbImage(outW, outH, src.rgb.clone());
        }
        Coefficients vert = vertical || horizontalFirst(src.width, src.height, outW, outH)
                ? coefficients(src.height, outH, filter) : null;
        if (!horizontalFirst(src.width, src.height, outW, outH)) {
            byte[] pixels = vertical ? verticalPass(src.rgb, src.width, 0, outH, vert) : src.rgb;
            RgbImage mid = new RgbImage(src.width, outH, pixels);
            return horizontal ? new RgbImage(outW, outH, horizontalPass(mid, 0, outH, outW, coefficients(src.width, outW, filter)))
                    : mid;
        }
        byte[] pixels = src.rgb;
        int width = src.width;
        int rowOffset = 0; // source row of pixels[0] for the vertical pass
        if (horizontal) {
            // Only the rows the vertical pass reads are resampled horizontally.
            int rowFirst = vert.first[0];
            int rowLast = vert.first[outH - 1] + vert.count[outH - 1];
            pixels = horizontalPass(src, rowFirst, rowLast, outW, coefficients(src.width, outW, filter));
            width = outW;
            rowOffset = rowFirst;
        }
        if (vertical) {
            pixels = verticalPass(pixels, width, rowOffset, outH, vert);
        }
        return new RgbImage(outW, outH, pixels);
    }

    private static byte[] horizontalPass(RgbImage src, int rowFirst, int rowLast, int outW, Coefficients c) {
        byte[] in = src.rgb;
        byte[] out = new byte[(rowLast - rowFirst) * outW * 3];
        int half = 1 << (PRECISION_BITS - 1);
        for (int y = rowFirst; y < rowLast; y++) {
            int rowBase = y * src.width * 3;
            int outBase = (y - rowFirst) * outW * 3;
            for (int xx = 0; xx < outW; xx++) {
                int s0 = half;
                int s1 = half;
                int s2 = half;
                int k = xx * c.ksize;
                int p = rowBase + c.first[xx] * 3;
                for (int x = 0; x < c.count[xx]; x++, p += 3) {
                    int w = c.weights[k + x];
                    s0 += (in[p] & 255) * w;
                    s1 += (in[p + 1] & 255) * w;
                    s2 += (in[p + 2] & 255) * w;
                }
                out[outBase + xx * 3] = (byte) clip8(s0);
                out[outBase + xx * 3 + 1] = (byte) clip8(s1);
                out[outBase + xx * 3 + 2] = (byte) clip8(s2);
            }
        }
        return out;
    }

    private static byte[] verticalPass(byte[] in, int width, int rowOffset, int outH, Coefficients c) {
        byte[] out = new byte[outH * width * 3];
        int half = 1 << (PRECISION_BITS - 1);
        int stride = width * 3;
        int[] acc = new int[stride];
        for (int yy = 0; yy < outH; yy++) {
            // Row by row (cache-friendly); integer sums do not depend on the order, so this equals Pillow's loop.
            java.util.Arrays.fill(acc, half);
            int k = yy * c.ksize;
            int firstRow = c.first[yy] - rowOffset;
            for (int y = 0; y < c.count[yy]; y++) {
                int w = c.weights[k + y];
                int base = (firstRow + y) * stride;
                for (int i = 0; i < stride; i++) {
                    acc[i] += (in[base + i] & 255) * w;
                }
            }
            int o = yy * stride;
            for (int i = 0; i < stride; i++) {
                out[o + i] = (byte) clip8(acc[i]);
            }
        }
        return out;
    }
}
