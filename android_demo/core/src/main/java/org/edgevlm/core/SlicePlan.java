package org.edgevlm.core;

/** Sizes of every piece of a sliced image, computed without touching pixels (processing/slicing.py SlicePlan). */
public final class SlicePlan {
    public final int[] overviewSize; // (w, h)
    public final int[] grid; // (cols, rows), null when not sliced
    public final int[] refineSize; // (w, h) of the image the slices are cut from, or null
    public final int[] sliceSize; // (w, h) of each slice, or null

    SlicePlan(int[] overviewSize, int[] grid, int[] refineSize, int[] sliceSize) {
        this.overviewSize = overviewSize;
        this.grid = grid;
        this.refineSize = refineSize;
        this.sliceSize = sliceSize;
    }

    public int nSlices() {
        return grid == null ? 0 : grid[0] * grid[1];
    }

    /** Overview plus slices: the number of vision-tower inputs for this image. */
    public int nChunks() {
        return 1 + nSlices();
    }
}
