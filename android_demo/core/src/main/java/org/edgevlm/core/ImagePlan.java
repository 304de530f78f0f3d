package org.edgevlm.core;

/**
 * An image's chunks and the feature rows each gives, from its size alone (processing/plan.py ImagePlan): the
 * overview's rows and, for a sliced or tiled image, each slice's rows (row-major), so the prompt's length is
 * known before any pixel work; the prompt layout spells it out. {@code positionGrid} is the merged grid
 * (t, h, w) of a native-resolution image (its M-RoPE positions), null otherwise.
 */
public final class ImagePlan {
    public final int[] grid; // (cols, rows) of the slices; null: the image is one chunk
    public final int overviewTokens;
    public final int[] sliceTokens; // per slice, row-major (empty when not sliced)
    public final int[] positionGrid; // (t, h/merge, w/merge) or null

    public ImagePlan(int[] grid, int overviewTokens, int[] sliceTokens, int[] positionGrid) {
        this.grid = grid;
        this.overviewTokens = overviewTokens;
        this.sliceTokens = sliceTokens;
        this.positionGrid = positionGrid;
    }

    public ImagePlan(int[] grid, int overviewTokens, int[] sliceTokens) {
        this(grid, overviewTokens, sliceTokens, null);
    }

    /** Every chunk gives {@code tokens} rows (a resampler or a fixed-size tower). */
    public static ImagePlan uniform(int[] grid, int tokens) {
        int slices = grid == null ? 0 : grid[0] * grid[1];
        int[] each = new int[slices];
        java.util.Arrays.fill(each, tokens);
        return new ImagePlan(grid, tokens, each);
    }

    public int nTokens() {
        int n = overviewTokens;
        for (int t : sliceTokens) {
            n += t;
        }
        return n;
    }
}
