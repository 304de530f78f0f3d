package org.edgevlm.core;

/**
 * The "square" processor kind (edgevlm/processing/square.py): CLIP's shortest-edge resize + centre crop
 * (options mode "crop", shortest_edge) or LLaVA's mean-colour pad to a square then resize (mode "pad").
 */
public final class Square {
    private Square() {
    }

    /** uint8 S x S: the square the vision tower sees, before normalisation. */
    public static RgbImage pixels(RgbImage image, ProcessorConfig cfg) {
        String mode = cfg.options.containsKey("mode") ? (String) cfg.options.get("mode") : "crop";
        int size = cfg.imageSize;
        Resample.Filter filter = Resample.Filter.of(cfg.resample);
        if (mode.equals("pad")) {
            return padded(image, size, cfg.mean, filter);
        }
        if (!mode.equals("crop")) {
            throw new IllegalArgumentException("square processor mode must be one of ('crop', 'pad'), not " + Py.repr(mode));
        }
        int edge = cfg.options.get("shortest_edge") == null ? size
                : (int) JsonMap.asLong(cfg.options.get("shortest_edge"), "shortest_edge");
        if (edge < size) {
            throw new IllegalArgumentException("square crop of " + size + " px is larger than the resized shorter side " + edge);
        }
        int w = image.width;
        int h = image.height;
        // transformers: the longer side is int(edge * long / short), a float quotient truncated
        int outW = w <= h ? edge : (int) ((double) ((long) edge * w) / h);
        int outH = w <= h ? (int) ((double) ((long) edge * h) / w) : edge;
        RgbImage resized = Resample.resize(image, outW, outH, filter);
        return resized.crop((outW - size) / 2, (outH - size) / 2, size, size);
    }

    /** The image centred on a square of the mean colour (int(mean * 255)), resized to {@code size}. */
    public static RgbImage padded(RgbImage image, int size, double[] mean, Resample.Filter filter) {
        RgbImage square = image;
        if (image.width != image.height) {
            int side = Math.max(image.width, image.height);
            byte[] fill = new byte[side * side * 3];
            for (int i = 0; i < side * side; i++) {
                for (int c = 0; c < 3; c++) {
                    fill[i * 3 + c] = (byte) (int) (mean[c] * 255);
                }
            }
            square = paste(new RgbImage(side, side, fill), image, (side - image.width) / 2, (side - image.height) / 2);
        }
        return Resample.resize(square, size, size, filter);
    }

    /** {@code canvas} with {@code image} pasted at (x0, y0) (in place; returns the canvas). */
    static RgbImage paste(RgbImage canvas, RgbImage image, int x0, int y0) {
        for (int y = 0; y < image.height; y++) {
            System.arraycopy(image.rgb, y * image.width * 3, canvas.rgb, ((y0 + y) * canvas.width + x0) * 3, image.width * 3);
        }
        return canvas;
    }
}
