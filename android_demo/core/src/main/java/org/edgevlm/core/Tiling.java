package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;

/**
 * The tiled processors (SmolVLM / Idefics3 square tiles, InternVL aspect-ratio tiles), ported from
 * edgevlm/processing/square_tiles.py and aspect_tiles.py. Both give the tiles row-major, then the whole
 * image as one more tile (global image / thumbnail) when there is more than one tile; every tile is
 * {@code tile x tile}. Plans come from the size alone, so the prompt is known before any pixel work.
 */
public final class Tiling {
    static final int MAX_IMAGE_SIZE = 4096; // the square tiler's cap on either edge after the first resize

    private Tiling() {
    }

    /** Sizes of the square tiler's three steps: fitted (w, h), canvas (w, h), grid rows x cols (0 x 0: one tile). */
    static final class SquarePlan {
        final int[] fitted;
        final int[] canvas;
        final int rows;
        final int cols;

        SquarePlan(int[] fitted, int[] canvas, int rows, int cols) {
            this.fitted = fitted;
            this.canvas = canvas;
            this.rows = rows;
            this.cols = cols;
        }
    }

    /** Step 1: the long edge to longestEdge (small images grow), the other rounded up to even, capped at 4096. */
    static int[] fitLongestEdge(int width, int height, int longestEdge) {
        double aspect = (double) width / height;
        int w;
        int h;
        if (width >= height) {
            w = longestEdge;
            h = (int) (w / aspect);
            h += h % 2;
        } else {
            h = longestEdge;
            w = (int) (h * aspect);
            w += w % 2;
        }
        w = Math.max(w, 1);
        h = Math.max(h, 1);
        aspect = (double) w / h; // the cap works on the step-1 size's own aspect ratio
        if (w >= h && w > MAX_IMAGE_SIZE) {
            h = (int) (MAX_IMAGE_SIZE / aspect);
            w = MAX_IMAGE_SIZE;
        } else if (h > w && h > MAX_IMAGE_SIZE) {
            w = (int) (MAX_IMAGE_SIZE * aspect);
            h = MAX_IMAGE_SIZE;
        }
        return new int[] {Math.max(w, 1), Math.max(h, 1)};
    }

    /** Step 2: both edges multiples of the tile (the long one rounded up, the other from the aspect ratio). */
    static int[] tileCanvas(int width, int height, int tile) {
        double aspect = (double) width / height;
        if (width >= height) {
            int w = (int) Math.ceil((double) width / tile) * tile;
            return new int[] {w, (int) Math.ceil((double) (int) (w / aspect) / tile) * tile};
        }
        int h = (int) Math.ceil((double) height / tile) * tile;
        return new int[] {(int) Math.ceil((double) (int) (h * aspect) / tile) * tile, h};
    }

    static SquarePlan squarePlan(int width, int height, int tile, int longestEdge, boolean split) {
        checkSize(width, height);
        int[] fitted = fitLongestEdge(width, height, longestEdge);
        if (!split) {
            return new SquarePlan(fitted, new int[] {tile, tile}, 0, 0);
        }
        int[] canvas = tileCanvas(fitted[0], fitted[1], tile);
        if (canvas[0] > tile || canvas[1] > tile) {
            return new SquarePlan(fitted, canvas, canvas[1] / tile, canvas[0] / tile);
        }
        return new SquarePlan(fitted, canvas, 0, 0);
    }

    /** (cols, rows) grids in the reference's visiting order: cols-major, stably sorted by tile count. */
    static List<int[]> candidateGrids(int minTiles, int maxTiles) {
        List<int[]> grids = new ArrayList<>();
        for (int cols = 1; cols <= maxTiles; cols++) {
            for (int rows = 1; rows <= maxTiles; rows++) {
                if (minTiles <= cols * rows && cols * rows <= maxTiles) {
                    grids.add(new int[] {cols, rows});
                }
            }
        }
        grids.sort((a, b) -> Integer.compare(a[0] * a[1], b[0] * b[1])); // List.sort is stable
        return grids;
    }

    /** (cols, rows) closest in aspect ratio; on an exact tie the later grid wins when the image covers over half of it. */
    static int[] bestGrid(int width, int height, int tile, int minTiles, int maxTiles) {
        double aspect = (double) width / height;
        double area = (double) width * height;
        int[] best = {1, 1};
        double bestDiff = Double.POSITIVE_INFINITY;
        for (int[] grid : candidateGrids(minTiles, maxTiles)) {
            double diff = Math.abs(aspect - (double) grid[0] / grid[1]);
            if (diff < bestDiff) {
                best = grid;
                bestDiff = diff;
            } else if (diff == bestDiff && area > 0.5 * tile * tile * grid[0] * grid[1]) {
                best = grid;
            }
        }
        return best;
    }

    /** InternVL's (cols, rows); a 1 x 1 grid is one tile without a thumbnail. */
    static int[] aspectGrid(int width, int height, ProcessorConfig cfg) {
        checkSize(width, height);
        int maxTiles = option(cfg, "max_tiles", 12);
        if (!JsonMap.getBool(cfg.options, "crop", true) || maxTiles <= 1) {
            return new int[] {1, 1};
        }
        return bestGrid(width, height, cfg.imageSize, option(cfg, "min_tiles", 1), maxTiles);
    }

    /** The prompt grid (cols, rows) of an image, null when it is one tile. */
    public static int[] gridOf(int width, int height, ProcessorConfig cfg) {
        if (cfg.kind.equals("square_tiles")) {
            SquarePlan plan = squarePlan(width, height, cfg.imageSize, option(cfg, "longest_edge", 4 * cfg.imageSize),
                    JsonMap.getBool(cfg.options, "split", true));
            return plan.rows == 0 ? null : new int[] {plan.cols, plan.rows};
        }
        int[] grid = aspectGrid(width, height, cfg);
        return grid[0] * grid[1] == 1 ? null : grid;
    }

    /** The tiles (uint8 images), row-major, then the global image / thumbnail when there is more than one. */
    public static List<RgbImage> tiles(RgbImage image, ProcessorConfig cfg) {
        int t = cfg.imageSize;
        List<RgbImage> out = new ArrayList<>();
        if (cfg.kind.equals("square_tiles")) { // three Lanczos resizes, each from the previous result
            SquarePlan plan = squarePlan(image.width, image.height, t, option(cfg, "longest_edge", 4 * t),
                    JsonMap.getBool(cfg.options, "split", true));
            RgbImage fitted = Resample.resize(image, plan.fitted[0], plan.fitted[1], Resample.Filter.LANCZOS);
            RgbImage canvas = Resample.resize(fitted, plan.canvas[0], plan.canvas[1], Resample.Filter.LANCZOS);
            if (plan.rows == 0) {
                out.add(canvas);
                return out;
            }
            crops(canvas, plan.cols, plan.rows, t, out);
            out.add(Resample.resize(canvas, t, t, Resample.Filter.LANCZOS));
            return out;
        }
        int[] grid = aspectGrid(image.width, image.height, cfg); // bicubic, both from the original image
        crops(Resample.resize(image, grid[0] * t, grid[1] * t, Resample.Filter.BICUBIC), grid[0], grid[1], t, out);
        if (grid[0] * grid[1] > 1) {
            out.add(Resample.resize(image, t, t, Resample.Filter.BICUBIC));
        }
        return out;
    }

    private static void crops(RgbImage canvas, int cols, int rows, int t, List<RgbImage> out) {
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out.add(canvas.crop(c * t, r * t, t, t));
            }
        }
    }

    private static int option(ProcessorConfig cfg, String key, int fallback) {
        return cfg.options.containsKey(key) ? (int) JsonMap.asLong(cfg.options.get(key), key) : fallback;
    }

    private static void checkSize(int width, int height) {
        if (width <= 0 || height <= 0) {
            throw new ImageException("image has zero size " + width + "x" + height + "; give an image with pixels");
        }
    }
}
