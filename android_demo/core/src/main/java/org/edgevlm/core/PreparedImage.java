package org.edgevlm.core;

/**
 * One image as vision-tower inputs (runtime/images.py PreparedImage). Sliced images: chunks are the
 * overview then the slices row-major, each float32 [3, p, L_i] with {@code tgtSizes[i] = (h_i, w_i)} patches.
 * Fixed-size tiles ("fixed", "square": one; "anyres": base tile + grid tiles; "square_tiles" / "aspect_tiles":
 * tiles then the global image): chunks float32 [3, S, S], no tgtSizes. Native-resolution images: one chunk of
 * patch rows float32 [n_patches, 3*T*p*p] and {@code gridThw}.
 */
public final class PreparedImage {
    public final float[][] chunks;
    public final int[][] tgtSizes; // [n][2] (h patches, w patches); null for fixed-size processors
    public final int[] grid; // (cols, rows) or null
    public final int patchSize;
    public final int imageSize; // fixed: S; sliced: 0
    public final int[] gridThw; // native resolution: (t, h, w) patches of the one chunk's rows; null otherwise

    PreparedImage(float[][] chunks, int[][] tgtSizes, int[] grid, int patchSize, int imageSize) {
        this(chunks, tgtSizes, grid, patchSize, imageSize, null);
    }

    private PreparedImage(float[][] chunks, int[][] tgtSizes, int[] grid, int patchSize, int imageSize, int[] gridThw) {
        this.chunks = chunks;
        this.tgtSizes = tgtSizes;
        this.grid = grid;
        this.patchSize = patchSize;
        this.imageSize = imageSize;
        this.gridThw = gridThw;
    }

    /** A native-resolution image: patch rows float32 [n_patches, 3*T*p*p] (pixel_values) and image_grid_thw. */
    static PreparedImage packedPatches(float[] rows, int[] gridThw, int patchSize) {
        return new PreparedImage(new float[][] {rows}, null, null, patchSize, 0, gridThw);
    }

    public int nChunks() {
        return chunks.length;
    }

    public boolean sliced() {
        return tgtSizes != null;
    }

    /** Longest chunk in patches (L_max / p). */
    public int maxPatches() {
        int max = 0;
        for (int[] t : tgtSizes) {
            max = Math.max(max, t[0] * t[1]);
        }
        return max;
    }

    /** Zero-padded batch float32 [n, 3, p, L_max] (sliced) or [n, 3, S, S] (fixed-size tiles), as the Python. */
    public float[] pixelValues() {
        if (!sliced()) {
            int size = chunks[0].length;
            float[] out = new float[chunks.length * size];
            for (int n = 0; n < chunks.length; n++) {
                System.arraycopy(chunks[n], 0, out, n * size, size);
            }
            return out;
        }
        int p = patchSize;
        int lMax = maxPatches() * p;
        float[] out = new float[chunks.length * 3 * p * lMax];
        for (int n = 0; n < chunks.length; n++) {
            int length = tgtSizes[n][0] * tgtSizes[n][1] * p;
            for (int row = 0; row < 3 * p; row++) {
                System.arraycopy(chunks[n], row * length, out, (n * 3 * p + row) * lMax, length);
            }
        }
        return out;
    }

    /** patch_attention_mask [n, L_max/p]: 1 for the real patches of each chunk. */
    public boolean[] patchMask() {
        int max = maxPatches();
        boolean[] out = new boolean[chunks.length * max];
        for (int n = 0; n < chunks.length; n++) {
            for (int i = 0; i < tgtSizes[n][0] * tgtSizes[n][1]; i++) {
                out[n * max + i] = true;
            }
        }
        return out;
    }
}
