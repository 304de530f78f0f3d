package org.edgevlm.core;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.List;
import java.util.Map;

/**
 * The "anyres" / "anyres_max" processor kinds (edgevlm/processing/anyres.py, anyres_image.py): an image's
 * tiling planned from its size alone (the best pinpoint, the grid, the unpadded and pooled feature map and
 * so its token count), and its pixels (base tile, then the grid tiles row-major, Pillow-exact resizes).
 * Arithmetic follows the Python (and so transformers) to the bit: Python's float floor division and
 * {@code int(round(x, 7))} are reproduced, not approximated.
 */
public final class Anyres {
    private Anyres() {
    }

    /** ProcessorConfig image_size (tile side), patch_size and options pinpoints [[h, w]...], max_tiles. */
    public static final class Settings {
        public final int tileSize;
        public final int patchSize;
        public final int[][] pinpoints; // (height, width)
        public final Integer maxTiles; // null: no tile budget (NeXT); "anyres_max" sets it

        Settings(ProcessorConfig cfg) {
            Map<String, Object> options = cfg.options;
            if (!options.containsKey("pinpoints")) {
                throw new IllegalArgumentException("processor kind " + Py.repr(cfg.kind) + " needs options.pinpoints; "
                        + "re-export the bundle");
            }
            List<Object> pins = JsonMap.list(options.get("pinpoints"), "pinpoints");
            tileSize = cfg.imageSize;
            patchSize = cfg.patchSize;
            pinpoints = new int[pins.size()][];
            for (int i = 0; i < pins.size(); i++) {
                pinpoints[i] = JsonMap.intArray(pins.get(i), "pinpoint");
                if (pinpoints[i][0] <= 0 || pinpoints[i][1] <= 0 || pinpoints[i][0] % tileSize != 0
                        || pinpoints[i][1] % tileSize != 0) {
                    throw new IllegalArgumentException("pinpoint " + pinpoints[i][0] + "x" + pinpoints[i][1]
                            + " is not a multiple of the tile size " + tileSize);
                }
            }
            maxTiles = options.get("max_tiles") == null ? null : (int) JsonMap.asLong(options.get("max_tiles"), "max_tiles");
        }

        public int featureSide() {
            return tileSize / patchSize;
        }
    }

    /** Every size of one image's trip through anyres (processing/anyres.py AnyresPlan); gridRows 0 = base only. */
    public static final class Plan {
        public int imageHeight, imageWidth, featureSide;
        public int bestHeight, bestWidth, resizedHeight, resizedWidth, padTop, padLeft, gridRows, gridCols;
        public int unpadTop, unpadLeft, unpadRows, unpadCols, outRows, outCols;

        public int nChunks() {
            return 1 + gridRows * gridCols;
        }

        /** Feature rows = image tokens: the base tile, then each grid row plus its newline (base only: + one newline). */
        public int nTokens() {
            int base = featureSide * featureSide;
            return gridRows == 0 ? base + 1 : base + outRows * (outCols + 1);
        }
    }

    static int[] selectBestResolution(int height, int width, int[][] pinpoints) {
        int[] best = null;
        long bestEffective = 0;
        double bestWasted = Double.POSITIVE_INFINITY;
        for (int[] pin : pinpoints) {
            double scale = Math.min((double) pin[1] / width, (double) pin[0] / height);
            long fitW = (long) (width * scale);
            long fitH = (long) (height * scale);
            long effective = Math.min(fitW * fitH, (long) width * height); // upscaling adds no information
            long wasted = (long) pin[1] * pin[0] - effective;
            if (effective > bestEffective || (effective == bestEffective && wasted < bestWasted)) {
                best = pin;
                bestEffective = effective;
                bestWasted = wasted;
            }
        }
        return best;
    }

    /** Python's {@code int(round(x, 7))}: x rounded to 7 decimals (its exact binary value, ties to even), truncated. */
    static int intRound7(double x) {
        return (int) new BigDecimal(x).setScale(7, RoundingMode.HALF_EVEN).doubleValue();
    }

    /** Python's float floor division {@code a // b} for a >= 0, b > 0 (CPython's float_floor_div). */
    static double floorDiv(double a, double b) {
        double mod = a % b; // C fmod
        double div = (a - mod) / b;
        if (div == 0.0) {
            return 0.0;
        }
        double floor = Math.floor(div);
        return div - floor > 0.5 ? floor + 1.0 : floor;
    }

    public static Plan plan(int height, int width, Settings s, int nImages) {
        if (height <= 0 || width <= 0) {
            throw new ImageException("image has zero size " + width + "x" + height + "; give an image with pixels");
        }
        Plan p = new Plan();
        p.imageHeight = height;
        p.imageWidth = width;
        p.featureSide = s.featureSide();
        if (s.maxTiles != null && nImages > 1) {
            return p; // OneVision tiles only an image alone in its prompt
        }
        int[] best = selectBestResolution(height, width, s.pinpoints);
        p.bestHeight = best[0];
        p.bestWidth = best[1];
        double scaleW = (double) p.bestWidth / width;
        double scaleH = (double) p.bestHeight / height;
        if (scaleW < scaleH) {
            p.resizedWidth = p.bestWidth;
            p.resizedHeight = Math.min((int) Math.ceil(height * scaleW), p.bestHeight);
        } else {
            p.resizedHeight = p.bestHeight;
            p.resizedWidth = Math.min((int) Math.ceil(width * scaleH), p.bestWidth);
        }
        p.padTop = (p.bestHeight - p.resizedHeight) / 2;
        p.padLeft = (p.bestWidth - p.resizedWidth) / 2;
        p.gridRows = p.bestHeight / s.tileSize;
        p.gridCols = p.bestWidth / s.tileSize;
        int mapRows = p.gridRows * p.featureSide;
        int mapCols = p.gridCols * p.featureSide;
        p.unpadRows = mapRows;
        p.unpadCols = mapCols;
        if ((double) width / height > (double) mapCols / mapRows) { // wider than the map: padded above and below
            int pad = (mapRows - intRound7(height * ((double) mapCols / width))) / 2;
            p.unpadTop = pad;
            p.unpadRows = mapRows - 2 * pad;
        } else {
            int pad = (mapCols - intRound7(width * ((double) mapRows / height))) / 2;
            p.unpadLeft = pad;
            p.unpadCols = mapCols - 2 * pad;
        }
        p.outRows = p.unpadRows;
        p.outCols = p.unpadCols;
        if (s.maxTiles != null) {
            double ratio = Math.sqrt((double) ((long) p.unpadRows * p.unpadCols)
                    / ((long) s.maxTiles * p.featureSide * p.featureSide));
            if (ratio > 1.1) {
                p.outRows = (int) floorDiv(p.unpadRows, ratio);
                p.outCols = (int) floorDiv(p.unpadCols, ratio);
            }
        }
        return p;
    }

    /** The vision inputs float32 [nChunks][3*S*S]: base tile then grid tiles (or one mean-padded square). */
    public static float[][] pixels(RgbImage image, ProcessorConfig cfg, Plan plan, float[][] table) {
        int size = cfg.imageSize;
        Resample.Filter filter = Resample.Filter.of(cfg.resample);
        if (plan.gridRows == 0) {
            return new float[][] {Patchify.chw(Square.padded(image, size, cfg.mean, filter), table)};
        }
        float[][] out = new float[plan.nChunks()][];
        out[0] = Patchify.chw(Resample.resize(image, size, size, filter), table);
        RgbImage resized = Resample.resize(image, plan.resizedWidth, plan.resizedHeight, filter);
        RgbImage canvas = Square.paste(new RgbImage(plan.bestWidth, plan.bestHeight,
                new byte[plan.bestWidth * plan.bestHeight * 3]), resized, plan.padLeft, plan.padTop);
        int index = 1;
        for (int row = 0; row < plan.gridRows; row++) {
            for (int col = 0; col < plan.gridCols; col++) {
                out[index++] = Patchify.chw(canvas.crop(col * size, row * size, size, size), table);
            }
        }
        return out;
    }
}
