package org.edgevlm.core;

/**
 * Pixels in, vision-tower inputs out, selected by the manifest's processor kind (processing/preprocess.py):
 * "slice" = MiniCPM-V overview + slices (always Pillow bicubic, as the reference); "slice_merge" = the same pixels,
 * each chunk giving h*w / patches_per_token rows (MiniCPM-V 4.6, {@link SliceMerge}); "fixed" = one square resize.
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
        return sliced() ? Slicing.plan(width, height, cfg).grid : null;
    }

    /** The image's chunks and feature rows without touching pixels ({@code tokensPerChunk}: the layout's). */
    public ImagePlan plan(int width, int height, int tokensPerChunk) {
        if (cfg.kind.equals("slice_merge")) {
            return SliceMerge.plan(width, height, cfg);
        }
        return ImagePlan.uniform(gridOf(width, height), tokensPerChunk);
    }

    private boolean sliced() {
        return cfg.kind.equals("slice") || cfg.kind.equals("slice_merge");
    }

    public PreparedImage prepare(RgbImage image) {
        if (cfg.maxPixels != null && (long) image.width * image.height > cfg.maxPixels) {
            throw new ImageException("image is " + image.width + "x" + image.height + " = " + (long) image.width * image.height
                    + " pixels, over the limit of " + cfg.maxPixels + "; downscale it or raise max_pixels");
        }
        if (sliced()) {
            return slices(image);
        }
        if (cfg.kind.equals("fixed")) {
            return fixed(image);
        }
        throw new ImageException("the bundle's processor kind " + Py.repr(cfg.kind) + " is not one this app runs "
                + "(slice, slice_merge, fixed); update the app");
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
