package org.edgevlm.core;

/** The golden test images: the same formula as android_golden/common.py test_pattern (ramps + 7-bit hash noise, mod 2^32). */
final class PatternImage {
    private PatternImage() {
    }

    static RgbImage make(int width, int height, int seed) {
        byte[] rgb = new byte[width * height * 3];
        int[] salt = new int[3];
        for (int c = 0; c < 3; c++) {
            salt[c] = (int) (((3L * seed + c) * 83492791L) & 0xffffffffL);
        }
        int[] ramps = new int[3];
        for (int y = 0; y < height; y++) {
            ramps[1] = y * 127 / Math.max(height - 1, 1);
            for (int x = 0; x < width; x++) {
                ramps[0] = x * 127 / Math.max(width - 1, 1);
                ramps[2] = ((x / 37 + y / 29) & 1) * 127;
                for (int c = 0; c < 3; c++) {
                    int hash = ((x * 73856093) ^ (y * 19349663) ^ salt[c]) * (int) 2654435761L; // int overflow = mod 2^32
                    rgb[(y * width + x) * 3 + c] = (byte) (ramps[c] + (hash >>> 25));
                }
            }
        }
        return new RgbImage(width, height, rgb);
    }
}
