package org.edgevlm.core;

/**
 * An 8-bit RGB image, row-major HWC bytes (the layout of numpy.asarray(PIL image)).
 * On Android, build it from a Bitmap after applying EXIF orientation (see the app's ImageLoader).
 */
public final class RgbImage {
    public final int width;
    public final int height;
    public final byte[] rgb; // [height][width][3]

    public RgbImage(int width, int height, byte[] rgb) {
        if (width <= 0 || height <= 0) {
            throw new ImageException("image has zero size " + width + "x" + height + "; give an image with pixels");
        }
        if (rgb.length != (long) width * height * 3) {
            throw new IllegalArgumentException("rgb holds " + rgb.length + " bytes, " + width + "x" + height + "x3 needed");
        }
        this.width = width;
        this.height = height;
        this.rgb = rgb;
    }

    /**
     * From packed ARGB ints (android.graphics.Bitmap.getPixels). Alpha is composited on white like the Python
     * loader, but with plain rounding: Pillow's fixed-point alpha_composite can differ by 1 for translucent pixels
     * (camera and gallery JPEGs are opaque, so this path is exact for them).
     */
    public static RgbImage fromArgb(int width, int height, int[] argb) {
        byte[] out = new byte[width * height * 3];
        for (int i = 0; i < width * height; i++) {
            int p = argb[i];
            int a = p >>> 24;
            for (int c = 0; c < 3; c++) {
                int v = (p >> (16 - 8 * c)) & 255;
                if (a != 255) {
                    // Pillow's alpha_composite over opaque white, rounded as Pillow does (v*a + 255*(255-a)) / 255
                    v = (v * a + 255 * (255 - a) + 127) / 255;
                }
                out[i * 3 + c] = (byte) v;
            }
        }
        return new RgbImage(width, height, out);
    }

    /** A rectangle of this image (a Pillow crop), copied. */
    public RgbImage crop(int x0, int y0, int w, int h) {
        byte[] out = new byte[w * h * 3];
        for (int y = 0; y < h; y++) {
            System.arraycopy(rgb, ((y0 + y) * width + x0) * 3, out, y * w * 3, w * 3);
        }
        return new RgbImage(w, h, out);
    }
}
