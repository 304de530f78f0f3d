package org.edgevlm.core;

/**
 * Processor kind "slice_merge" (processing/slice_merge.py): LLaVA-UHD slicing whose vision part merges each m x m
 * block of a chunk's patch grid into one feature row (MiniCPM-V 4.6: m = 4 in "16x" mode, 2 in "4x"), so an
 * h x w-patch chunk gives h*w / m^2 rows and chunks of one image need not give the same count.
 */
public final class SliceMerge {
    private SliceMerge() {
    }

    /** options.patches_per_token (m^2): 16 or 4. */
    public static int patchesPerToken(ProcessorConfig cfg) {
        Object v = cfg.options.get("patches_per_token");
        long value = v == null ? 0 : JsonMap.asLong(v, "patches_per_token");
        long side = (long) Math.sqrt((double) value);
        if (value < 1 || side * side != value) {
            throw new ImageException("processor option patches_per_token " + Py.repr(v) + " is not a square merge "
                    + "(4, 16 ...); re-export the bundle");
        }
        return (int) value;
    }

    public static ImagePlan plan(int width, int height, ProcessorConfig cfg) {
        int merge = patchesPerToken(cfg);
        int side = (int) Math.round(Math.sqrt(merge));
        SlicePlan plan = Slicing.plan(width, height, cfg);
        int p = cfg.patchSize;
        int[][] grids = new int[plan.nChunks()][];
        grids[0] = new int[] {plan.overviewSize[1] / p, plan.overviewSize[0] / p};
        for (int i = 1; i < grids.length; i++) {
            grids[i] = new int[] {plan.sliceSize[1] / p, plan.sliceSize[0] / p};
        }
        int[] tokens = new int[grids.length];
        for (int i = 0; i < grids.length; i++) {
            int h = grids[i][0];
            int w = grids[i][1];
            if (h % side != 0 || w % side != 0) {
                throw new ImageException("a " + h + "x" + w + "-patch chunk cannot be merged " + side + "x" + side
                        + ": the bundle's resize_align " + cfg.resizeAlign + " should be patch_size x " + side
                        + "; re-export the bundle");
            }
            tokens[i] = h * w / merge;
        }
        return new ImagePlan(plan.grid, tokens[0], java.util.Arrays.copyOfRange(tokens, 1, tokens.length));
    }
}
