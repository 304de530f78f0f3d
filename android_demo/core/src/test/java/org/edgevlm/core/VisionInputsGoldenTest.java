package org.edgevlm.core;

import java.util.List;
import java.util.Map;

/** The MiniCPM-V vision graph's derived inputs against runtime/vision_inputs.py (vision_inputs.json). */
public final class VisionInputsGoldenTest {
    private final Golden golden;
    private final Map<String, Object> data;

    public VisionInputsGoldenTest(Golden golden) {
        this.golden = golden;
        data = golden.json("vision_inputs.json");
    }

    private static int[][] tgt(Map<String, Object> c) {
        List<Object> sizes = JsonMap.getList(c, "tgt_sizes");
        int[][] out = new int[sizes.size()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = JsonMap.intArray(sizes.get(i), "tgt");
        }
        return out;
    }

    public void testNavitPositionIdsAreExact() {
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            int max = JsonMap.getInt(c, "max_patches", 0);
            long[] ids = VisionInputs.navitPositionIds(tgt(c), max, JsonMap.getInt(c, "patches_per_side", 0));
            List<Object> rows = JsonMap.getList(c, "position_ids");
            for (int b = 0; b < rows.size(); b++) {
                long[] expected = JsonMap.longArray(rows.get(b), "row");
                long[] actual = java.util.Arrays.copyOfRange(ids, b * max, (b + 1) * max);
                Check.equal(expected, actual, "position ids of chunk " + b + " in " + c.get("tgt_sizes"));
            }
        }
    }

    /** float64 sin/cos/pow may differ from numpy's libm in the last bit; after float32 rounding we allow 1 ulp. */
    public void testResamplerKeyPosWithinOneUlp() {
        int values = 0;
        int differing = 0;
        double maxDiff = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            float[] expected = golden.floats(c.get("key_pos"));
            float[] actual = VisionInputs.resamplerKeyPos(tgt(c), JsonMap.getInt(c, "embed_dim", 0), JsonMap.getInt(c, "max_patches", 0));
            Check.equal(expected.length, actual.length, "key_pos size");
            for (int i = 0; i < expected.length; i++) {
                double diff = Math.abs((double) expected[i] - actual[i]);
                if (diff != 0) {
                    differing++;
                    maxDiff = Math.max(maxDiff, diff);
                    Check.isTrue(diff <= Math.ulp(expected[i]), "key_pos[" + i + "] " + actual[i] + " vs Python " + expected[i]);
                }
            }
            values += expected.length;
        }
        System.out.printf("     key_pos: %d values, %d differ by 1 ulp, max abs diff %.3g%n", values, differing, maxDiff);
    }
}
