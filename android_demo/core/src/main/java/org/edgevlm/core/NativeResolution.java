package org.edgevlm.core;

import java.util.Map;

/**
 * Native-resolution preprocessing (Qwen2-VL / Qwen2.5-VL), ported from edgevlm/processing/native_resolution.py:
 * the image keeps its aspect ratio, both sides rounded to multiples of {@code factor = patch * merge} (28 px)
 * with the area inside [min_pixels, max_pixels] (transformers' smart_resize, same double arithmetic and Python's
 * round-half-to-even), Pillow-exact bicubic resize, then patch rows in merge-block order, each patch repeated
 * {@code temporal} times: float32 [n_patches, 3 * temporal * p * p]. Settings come from the manifest's
 * {@code processor.options} (min_pixels, max_pixels, merge_size, temporal_patch_size); a request may override the
 * pixel bounds ({@link #withPixels}). Bad settings and images are refused from the size alone, before any pixel work.
 */
public final class NativeResolution {
    public static final int MAX_ASPECT_RATIO = 200; // transformers refuses longer/shorter side ratios above this

    public final long minPixels;
    public final long maxPixels;
    public final int patchSize;
    public final int mergeSize;
    public final int temporalPatchSize;
    private final ProcessorConfig cfg;

    public NativeResolution(ProcessorConfig cfg) {
        this(cfg, option(cfg.options, "min_pixels", 56 * 56), option(cfg.options, "max_pixels", 28 * 28 * 1280));
    }

    private NativeResolution(ProcessorConfig cfg, long minPixels, long maxPixels) {
        this.cfg = cfg;
        this.minPixels = minPixels;
        this.maxPixels = maxPixels;
        this.patchSize = cfg.patchSize;
        this.mergeSize = (int) option(cfg.options, "merge_size", 2);
        this.temporalPatchSize = (int) option(cfg.options, "temporal_patch_size", 2);
    }

    private static long option(Map<String, Object> options, String key, long fallback) {
        Object v = options.get(key);
        return v == null ? fallback : JsonMap.asLong(v, key);
    }

    /** The same settings with a request's pixel bounds (null keeps the bundle's): the speed/quality dial. */
    public NativeResolution withPixels(Long minPixels, Long maxPixels) {
        return new NativeResolution(cfg, minPixels == null ? this.minPixels : minPixels,
                maxPixels == null ? this.maxPixels : maxPixels);
    }

    public int factor() {
        return patchSize * mergeSize;
    }

    /** Refuse bounds that cannot be met (transformers silently returns a size outside them). */
    public void check() {
        int f = factor();
        if (minPixels < 1) {
            throw new ImageException("min_pixels " + minPixels + " must be at least 1 (at 0 a thin image rounds to a "
                    + "0-pixel side); the published value is 3136");
        }
        if (maxPixels < (long) f * f) {
            throw new ImageException("max_pixels " + maxPixels + " is below one " + f + "x" + f + " image token ("
                    + (f * f) + " pixels); raise max_pixels");
        }
        if (minPixels > maxPixels) {
            throw new ImageException("min_pixels " + minPixels + " is larger than max_pixels " + maxPixels
                    + "; lower min_pixels or raise max_pixels");
        }
        if (!cfg.resample.equals("bicubic") && !cfg.resample.equals("bilinear")) {
            throw new ImageException("resample " + Py.repr(cfg.resample) + " is not one of ['bicubic', 'bilinear']");
        }
    }

    /** transformers' smart_resize: {height, width}, multiples of factor. */
    public static int[] smartResize(int height, int width, int factor, long minPixels, long maxPixels) {
        long hBar = Py.roundHalfEven((double) height / factor) * factor;
        long wBar = Py.roundHalfEven((double) width / factor) * factor;
        if (hBar * wBar > maxPixels) {
            double beta = Math.sqrt((double) ((long) height * width) / maxPixels);
            hBar = Math.max(factor, (long) Math.floor(height / beta / factor) * factor);
            wBar = Math.max(factor, (long) Math.floor(width / beta / factor) * factor);
        } else if (hBar * wBar < minPixels) {
            double beta = Math.sqrt((double) minPixels / ((long) height * width));
            hBar = (long) Math.ceil(height * beta / factor) * factor;
            wBar = (long) Math.ceil(width * beta / factor) * factor;
        }
        return new int[] {(int) hBar, (int) wBar};
    }

    /** What one image becomes, from its size alone. */
    public static final class Plan {
        public final int resizedWidth;
        public final int resizedHeight;
        public final int[] gridThw; // (t, h, w) in patches
        public final int nTokens; // placeholder tokens = feature rows
        public final ImagePlan imagePlan; // one chunk of nTokens rows; positionGrid (t, h/m, w/m) for M-RoPE

        Plan(int resizedWidth, int resizedHeight, int[] gridThw, int merge) {
            this.resizedWidth = resizedWidth;
            this.resizedHeight = resizedHeight;
            this.gridThw = gridThw;
            this.nTokens = gridThw[0] * gridThw[1] * gridThw[2] / (merge * merge);
            this.imagePlan = new ImagePlan(null, nTokens, new int[0],
                    new int[] {gridThw[0], gridThw[1] / merge, gridThw[2] / merge});
        }
    }

    /** transformers' plan of a width x height image (plan_native_resolution); ImageException if none. */
    public Plan plan(int width, int height) {
        check();
        if (width <= 0 || height <= 0) {
            throw new ImageException("image has zero size " + width + "x" + height + "; give an image with pixels");
        }
        if ((double) Math.max(width, height) / Math.min(width, height) > MAX_ASPECT_RATIO) {
            throw new ImageException("image " + width + "x" + height + " has a side ratio over " + MAX_ASPECT_RATIO
                    + ":1, which this model cannot take; crop or pad it to a less extreme shape");
        }
        int[] size = smartResize(height, width, factor(), minPixels, maxPixels);
        return new Plan(size[1], size[0], new int[] {1, size[0] / patchSize, size[1] / patchSize}, mergeSize);
    }

    /** The runtime's plan (runtime/images.py): also refuses an image narrower or shorter than one token. */
    public Plan runtimePlan(int width, int height) {
        int f = factor();
        if (Math.min(width, height) < f) {
            throw new ImageException("image is " + width + "x" + height + " pixels, smaller than one " + f + "x" + f
                    + " image token on a side; give an image at least " + f + " px wide and high (upscale it yourself "
                    + "if you must)");
        }
        return plan(width, height);
    }

    /** Resize + normalise + patchify: float32 [n_patches, 3 * temporal * p * p] flat, patches in merge-block order. */
    public float[] preprocess(RgbImage image, Plan plan) {
        RgbImage resized = Resample.resize(image, plan.resizedWidth, plan.resizedHeight, Resample.Filter.of(cfg.resample));
        return patchify(resized, Normalize.table(cfg.rescaleFactor, cfg.mean, cfg.std));
    }

    /** Row of patch (block row bi, block col bj, my, mx): ((bi*bw + bj)*m + my)*m + mx; layout (c, t, y, x). */
    float[] patchify(RgbImage image, float[][] table) {
        int p = patchSize;
        int m = mergeSize;
        int t = temporalPatchSize;
        int bh = image.height / (p * m);
        int bw = image.width / (p * m);
        int rowLength = 3 * t * p * p;
        float[] out = new float[bh * bw * m * m * rowLength];
        int row = 0;
        for (int bi = 0; bi < bh; bi++) {
            for (int bj = 0; bj < bw; bj++) {
                for (int my = 0; my < m; my++) {
                    for (int mx = 0; mx < m; mx++, row++) {
                        int top = (bi * m + my) * p;
                        int left = (bj * m + mx) * p;
                        for (int c = 0; c < 3; c++) {
                            for (int y = 0; y < p; y++) {
                                int src = ((top + y) * image.width + left) * 3 + c;
                                for (int x = 0; x < p; x++) {
                                    float v = table[c][image.rgb[src + x * 3] & 255];
                                    for (int f = 0; f < t; f++) { // the temporal copies (a still image is t frames)
                                        out[row * rowLength + ((c * t + f) * p + y) * p + x] = v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out;
    }
}
