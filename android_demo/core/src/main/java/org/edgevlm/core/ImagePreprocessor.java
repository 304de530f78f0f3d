package org.edgevlm.core;

/**
 * Pixels in, vision-tower inputs out, selected by the manifest's processor kind (runtime/images.py KINDS):
 * "slice" = MiniCPM-V overview + slices (always Pillow bicubic, as the reference); "slice_merge" = the same pixels,
 * each chunk giving h*w / patches_per_token rows (MiniCPM-V 4.6, {@link SliceMerge}); "fixed" = one square resize;
 * "square_tiles" (SmolVLM / Idefics3) and "aspect_tiles" (InternVL) = tiles + a global image (Tiling.java);
 * "square" = CLIP crop / mean-colour pad (Square); "anyres" / "anyres_max" = base tile + pinpoint grid (Anyres);
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
        if (tiled()) {
            return Tiling.gridOf(width, height, cfg);
        }
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

    private boolean tiled() {
        return cfg.kind.equals("square_tiles") || cfg.kind.equals("aspect_tiles");
    }

    /** Feature rows (prompt tokens) of one image of a prompt holding {@code nImages}, from its size alone. */
    public int tokensOf(int width, int height, int nImages, int tokensPerChunk) {
        if (cfg.kind.startsWith("anyres")) {
            return Anyres.plan(height, width, new Anyres.Settings(cfg), nImages).nTokens();
        }
        return plan(width, height, tokensPerChunk).nTokens();
    }

    public PreparedImage prepare(RgbImage image) {
        return prepare(image, 1);
    }

    /** One image of a prompt holding {@code nImages} images (some kinds tile only a lone image). */
    public PreparedImage prepare(RgbImage image, int nImages) {
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
        if (tiled()) {
            return tiles(image);
        }
        if (cfg.kind.equals("square")) {
            return new PreparedImage(new float[][] {Patchify.chw(Square.pixels(image, cfg), table)}, null, null,
                    cfg.patchSize, cfg.imageSize);
        }
        if (cfg.kind.equals("anyres") || cfg.kind.equals("anyres_max")) {
            Anyres.Settings settings = new Anyres.Settings(cfg);
            if (cfg.kind.equals("anyres") != (settings.maxTiles == null)) {
                throw new ImageException("processor kind " + Py.repr(cfg.kind) + " does not match options.max_tiles; "
                        + "re-export the bundle");
            }
            Anyres.Plan plan = Anyres.plan(image.height, image.width, settings, nImages);
            int[] grid = plan.gridRows == 0 ? null : new int[] {plan.gridCols, plan.gridRows};
            return new PreparedImage(Anyres.pixels(image, cfg, plan, table), null, grid, cfg.patchSize, cfg.imageSize);
        }
        if (cfg.kind.equals("native_resolution")) {
            NativeResolution settings = new NativeResolution(cfg);
            NativeResolution.Plan plan = settings.runtimePlan(image.width, image.height);
            return PreparedImage.packedPatches(settings.preprocess(image, plan), plan.gridThw, cfg.patchSize);
        }
        throw new ImageException("the bundle's processor kind " + Py.repr(cfg.kind) + " is not one this app runs "
                + "(slice, slice_merge, fixed, square_tiles, aspect_tiles, square, anyres, anyres_max, "
                + "native_resolution); update the app");
    }

    private PreparedImage tiles(RgbImage image) {
        java.util.List<RgbImage> tiles = Tiling.tiles(image, cfg);
        float[][] chunks = new float[tiles.size()][];
        for (int i = 0; i < chunks.length; i++) {
            chunks[i] = Patchify.chw(tiles.get(i), table); // [3, T, T]
        }
        return new PreparedImage(chunks, null, Tiling.gridOf(image.width, image.height, cfg), cfg.patchSize,
                cfg.imageSize);
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
