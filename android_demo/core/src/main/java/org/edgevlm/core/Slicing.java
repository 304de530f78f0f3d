package org.edgevlm.core;

/**
 * LLaVA-UHD slice planning as the MiniCPM-V reference does it, ported from edgevlm/processing/slicing.py.
 * Exactness details: Python's round() is banker's rounding, int() truncates, and log() is taken with
 * StrictMath so every device computes the same grid on near-ties.
 */
public final class Slicing {
    private Slicing() {
    }

    /** Nearest multiple of divisor (halves to even), at least divisor. */
    static long ensureDivide(double length, int divisor) {
        return Math.max(Py.roundHalfEven(length / divisor) * divisor, divisor);
    }

    /** About scaleResolution^2 pixels with the input's aspect ratio, multiples of patch. */
    static long[] findBestResize(double width, double height, int scaleResolution, int patch, boolean allowUpscale) {
        if (width * height > (double) scaleResolution * scaleResolution || allowUpscale) {
            double ratio = width / height;
            height = (long) (scaleResolution / Math.sqrt(ratio)); // truncation, as the reference
            width = (long) (height * ratio);
        }
        return new long[] {ensureDivide(width, patch), ensureDivide(height, patch)};
    }

    static long[] refineSize(int width, int height, int[] grid, int scaleResolution, int patch) {
        double cellWidth = (double) ensureDivide(width, grid[0]) / grid[0];
        double cellHeight = (double) ensureDivide(height, grid[1]) / grid[1];
        long[] cell = findBestResize(cellWidth, cellHeight, scaleResolution, patch, true);
        return new long[] {cell[0] * grid[0], cell[1] * grid[1]};
    }

    /** (cols, rows), or null when the image is not sliced; first best candidate wins ties (strict less-than). */
    static int[] slicedGrid(int width, int height, int maxSliceNums, boolean neverSplit, int scaleResolution) {
        double logRatio = StrictMath.log((double) width / height);
        long area = (long) width * height;
        int multiple = (int) Math.min(Math.ceil((double) area / ((double) scaleResolution * scaleResolution)), maxSliceNums);
        if (multiple <= 1 || neverSplit) {
            return null;
        }
        int[] best = {1, 1};
        double minError = Double.POSITIVE_INFINITY;
        for (int n = multiple - 1; n <= multiple + 1; n++) {
            if (n == 1 || n > maxSliceNums) {
                continue;
            }
            for (int m = 1; m <= n; m++) {
                if (n % m != 0) {
                    continue;
                }
                double error = Math.abs(logRatio - StrictMath.log((double) m / (n / m)));
                if (error < minError) {
                    best = new int[] {m, n / m};
                    minError = error;
                }
            }
        }
        return best;
    }

    /** The reference slice_image decisions for a width x height image. */
    public static SlicePlan plan(int width, int height, int maxSliceNums, int scaleResolution, int patch, boolean neverSplit) {
        if (width <= 0 || height <= 0) {
            throw new ImageException("image has zero size " + width + "x" + height + "; give an image with pixels");
        }
        int[] grid = slicedGrid(width, height, maxSliceNums, neverSplit, scaleResolution);
        if (grid == null) {
            return new SlicePlan(ints(findBestResize(width, height, scaleResolution, patch, true)), null, null, null);
        }
        // The overview only ever shrinks here; the refined image may grow.
        int[] overview = ints(findBestResize(width, height, scaleResolution, patch, false));
        int[] refine = ints(refineSize(width, height, grid, scaleResolution, patch));
        return new SlicePlan(overview, grid, refine, new int[] {refine[0] / grid[0], refine[1] / grid[1]});
    }

    /** plan() with a bundle's processor settings (sizes aligned to resize_align or the patch). */
    public static SlicePlan plan(int width, int height, ProcessorConfig cfg) {
        return plan(width, height, cfg.maxSliceNums, cfg.scaleResolution, cfg.align(), cfg.neverSplit);
    }

    private static int[] ints(long[] v) {
        return new int[] {Math.toIntExact(v[0]), Math.toIntExact(v[1])};
    }
}
