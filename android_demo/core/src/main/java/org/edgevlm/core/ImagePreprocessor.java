package org.edgevlm.core;

/**
 * Pixels in, vision-tower inputs out, selected by the manifest's processor kind (processing/preprocess.py):
 * "slice" = MiniCPM-V overview + slices (always Pillow bicubic, as the reference); "fixed" = one square resize;
 * "native_resolution" = Qwen2-VL's own-size resize within a pixel budget (NativeResolution).
 */
public final class ImagePreprocessor {
    private final ProcessorConfig cfg;
    private final float[][] table;

    public ImagePreprocessor(ProcessorConfig cfg) {
        this.cfg = cfg;
        this.table = Normalize.table(cfg.rescaleFactor, cfg.mean, cfg.std);
    }

    /** The slice grid without touching pixels (prompt length is known before any heavy work); null if not sliced. */
    public int[] gridOf(int width, int height) {
        return cfg.kind.equals("slice") ? Slicing.plan(width, height, cfg).grid : null;
    }

    public PreparedImage prepare(RgbImage image) {
        if (cfg.maxPixels != null && (long) image.width * image.height > cfg.maxPixels) {
            throw new ImageException("image is " + image.width + "x" + image.height + " = " + (long) image.width * image.height
                    + " pixels, over the limit of " + cfg.maxPixels + "; downscale it or raise max_pixels");
        }
        if (cfg.kind.equals("slice")) {
            return slices(image);
        }
        if (cfg.kind.equals("fixed")) {
            return fixed(image);
        }
        if (cfg.kind.equals("native_resolution")) {
            NativeResolution settings = new NativeResolution(cfg);
            NativeResolution.Plan plan = settings.runtimePlan(image.width, image.height);
            return PreparedImage.packedPatches(settings.preprocess(image, plan), plan.gridThw, cfg.patchSize);
        }
        throw new ImageException("the bundle's processor kind " + Py.repr(cfg.kind) + " is not one this app runs "
                + "(slice, fixed, native_resolution); update the app");
    }

    private PreparedImage slices(RgbImage image) {
        SlicePlan plan = Slicing.plan(image.width, image.height, cfg);
        RgbImage overview = Resample.resize(image, plan.overviewSize[0], plan.overviewSize[1], Resample.Filter.BICUBIC);
        int p = cfg.patchSize;
        float[][] chunks = new float[plan.nChunks()][];
        int[][] tgt = new int[plan.nChunks()][];
        chunks[0] = Patchify.packChunk(overview, 0, 0, overview.width, overview.height, p, table);
        tgt[0] = new int[] {overview.height / p, overview.width / p};
        if (plan.grid != null) {
            RgbImage refine = Resample.resize(image, plan.refineSize[0], plan.refineSize[1], Resample.Filter.BICUBIC);
            int w = plan.sliceSize[0];
            int h = plan.sliceSize[1];
            int index = 1;
            for (int y = 0; y < plan.grid[1]; y++) {
                for (int x = 0; x < plan.grid[0]; x++, index++) {
                    chunks[index] = Patchify.packChunk(refine, x * w, y * h, w, h, p, table);
                    tgt[index] = new int[] {h / p, w / p};
                }
            }
        }
        return new PreparedImage(chunks, tgt, plan.grid, p, 0);
    }

    private PreparedImage fixed(RgbImage image) {
        int s = cfg.imageSize;
        RgbImage resized = Resample.resize(image, s, s, Resample.Filter.of(cfg.resample));
        return new PreparedImage(new float[][] {Patchify.chw(resized, table)}, null, null, cfg.patchSize, s);
    }
}
