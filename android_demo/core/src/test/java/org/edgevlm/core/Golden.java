package org.edgevlm.core;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import java.util.Map;

/** Reads the golden files written by edgevlm/testing/android_golden/ (JSON + raw little-endian .bin arrays). */
final class Golden {
    final Path dir;

    Golden(Path dir) {
        this.dir = dir;
    }

    Map<String, Object> json(String name) {
        try {
            return JsonMap.map(Json.parse(new String(Files.readAllBytes(dir.resolve(name)), StandardCharsets.UTF_8)), name);
        } catch (IOException ex) {
            throw new IllegalStateException("golden file " + dir.resolve(name) + " is missing: run "
                    + "`python -m edgevlm.testing.android_golden " + dir + "` first", ex);
        }
    }

    private ByteBuffer bytes(Object ref) {
        Map<String, Object> r = JsonMap.map(ref, "array reference");
        try {
            return ByteBuffer.wrap(Files.readAllBytes(dir.resolve(JsonMap.getString(r, "file", null))))
                    .order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException ex) {
            throw new IllegalStateException("golden array missing", ex);
        }
    }

    /** A float32 array reference -> flat float[]. */
    float[] floats(Object ref) {
        ByteBuffer b = bytes(ref);
        float[] out = new float[b.remaining() / 4];
        b.asFloatBuffer().get(out);
        return out;
    }

    /** A float32 array reference of shape [..., hidden] -> rows [n][hidden]. */
    float[][] rows(Object ref) {
        List<Object> shape = JsonMap.getList(JsonMap.map(ref, "ref"), "shape");
        int hidden = (int) JsonMap.asLong(shape.get(shape.size() - 1), "shape");
        float[] flat = floats(ref);
        float[][] out = new float[flat.length / hidden][hidden];
        for (int i = 0; i < out.length; i++) {
            System.arraycopy(flat, i * hidden, out[i], 0, hidden);
        }
        return out;
    }

    static String sha256(float[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return sha256(b.array());
    }

    static String sha256(byte[] bytes) {
        try {
            return BundleReader.hex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException ex) {
            throw new IllegalStateException(ex);
        }
    }

    static String sha256(boolean[] values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (values[i] ? 1 : 0);
        }
        return sha256(b);
    }

    static int[] grid(Object v) {
        return v == null ? null : JsonMap.intArray(v, "grid");
    }
}
