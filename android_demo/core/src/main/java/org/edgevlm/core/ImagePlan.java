package org.edgevlm.core;

/**
 * An image's plan (processing/plan.py ImagePlan): how many feature rows its overview and each tile give, known
 * from the image size alone, so the prompt's length is known before any pixel work. {@code positionGrid} is the
 * merged grid (t, h, w) of a native-resolution image (M-RoPE positions), null otherwise.
 */
public final class ImagePlan {
    public final int[] grid; // (cols, rows) of the tiles, or null: the image is one chunk
    public final int overviewTokens;
    public final int[] sliceTokens; // per tile, row-major (empty when not tiled)
    public final int[] positionGrid; // (t, h/merge, w/merge) or null

    public ImagePlan(int[] grid, int overviewTokens, int[] sliceTokens, int[] positionGrid) {
        this.grid = grid;
        this.overviewTokens = overviewTokens;
        this.sliceTokens = sliceTokens;
        this.positionGrid = positionGrid;
    }

    /** Every chunk gives {@code tokens} rows (a resampler or a fixed-size tower). */
    public static ImagePlan uniform(int[] grid, int tokens) {
        int tiles = grid == null ? 0 : grid[0] * grid[1];
        int[] slices = new int[tiles];
        java.util.Arrays.fill(slices, tokens);
        return new ImagePlan(grid, tokens, slices, null);
    }

    public int nTokens() {
        int n = overviewTokens;
        for (int t : sliceTokens) {
            n += t;
        }
        return n;
    }
}
