package org.edgevlm.core;

import java.util.List;
import java.util.Map;

/**
 * The vision graph's derived inputs against processing/vision_inputs.py (vision_inputs.json), through the same
 * dispatcher the app calls ({@link VisionInputs#compute}: kind names and parameters as the manifest gives them).
 */
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

    /** The graph input of kind {@code kind} in case {@code c}, computed as the app computes it. */
    private static VisionInputs.Derived compute(Map<String, Object> c, String kind) {
        String input = null;
        for (Map.Entry<String, Object> e : JsonMap.getMap(c, "derived_inputs").entrySet()) {
            input = kind.equals(e.getValue()) ? e.getKey() : input;
        }
        Check.isTrue(input != null, "no graph input of kind " + kind);
        int max = JsonMap.getInt(c, "max_patches", 0);
        VisionInputs.Derived d = VisionInputs.compute(kind, tgt(c), max, JsonMap.getMap(c, "params"));
        Check.equal(kind.equals("sincos_2d_keys") ? 3 : 2, d.shape.length, kind + " rank");
        Check.equal(tgt(c).length, d.shape[0], kind + " batch");
        Check.equal(max, d.shape[1], kind + " patches");
        return d;
    }

    public void testEveryKindIsKnown() {
        Check.equal(JsonMap.getList(data, "kinds"), new java.util.ArrayList<Object>(VisionInputs.KINDS), "derived-input kinds");
        BundleException ex = Check.raises(BundleException.class,
                () -> VisionInputs.compute("navit_position_ids", new int[][] {{1, 1}}, 1, java.util.Collections.emptyMap()),
                "a schema-1 kind name");
        Check.isTrue(ex.getMessage().contains("does not know"), ex.getMessage());
    }

    public void testBucketedPositionIdsAreExact() {
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            int max = JsonMap.getInt(c, "max_patches", 0);
            long[] ids = compute(c, "bucketed_position_ids").int64;
            List<Object> rows = JsonMap.getList(c, "position_ids");
            for (int b = 0; b < rows.size(); b++) {
                long[] expected = JsonMap.longArray(rows.get(b), "row");
                long[] actual = java.util.Arrays.copyOfRange(ids, b * max, (b + 1) * max);
                Check.equal(expected, actual, "position ids of chunk " + b + " in " + c.get("tgt_sizes"));
            }
        }
    }

    /** Packed-ViT tables (Qwen2-VL vision): integer tables exact, rotary cos/sin within 2 float32 ulp (numpy's
     * float32 cos/sin and powf against float64 ones rounded). */
    public void testPackedVitTables() {
        int cases = 0;
        int differing = 0;
        for (Object item : JsonMap.getList(data, "packed")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            List<Object> gridList = JsonMap.getList(c, "grids");
            int[][] grids = new int[gridList.size()][];
            for (int i = 0; i < grids.length; i++) {
                grids[i] = JsonMap.intArray(gridList.get(i), "grid");
            }
            int patches = JsonMap.getInt(c, "patches", 0);
            for (Map.Entry<String, Object> e : JsonMap.getMap(c, "derived_inputs").entrySet()) {
                VisionInputs.Derived d = VisionInputs.compute((String) e.getValue(), grids, patches, JsonMap.getMap(c, "params"));
                Object expected = c.get(e.getKey());
                String what = e.getKey() + " of " + gridList;
                if (d.int64 != null) {
                    Check.equal(JsonMap.longArray(expected, what), d.int64, what);
                    continue;
                }
                float[] want = golden.floats(expected);
                Check.equal(want.length, d.float32.length, what + " size");
                for (int i = 0; i < want.length; i++) {
                    float diff = Math.abs(want[i] - d.float32[i]);
                    differing += diff == 0 ? 0 : 1;
                    Check.isTrue(diff <= 2 * Math.ulp(Math.max(Math.abs(want[i]), 1e-3f)),
                            what + "[" + i + "] " + d.float32[i] + " vs Python " + want[i]);
                }
            }
            cases++;
        }
        System.out.println("     packed ViT tables: " + cases + " cases, " + differing + " rotary values differ in the last bits");
        Check.isTrue(cases >= 5, "packed cases");
    }

    /** float64 sin/cos/pow may differ from numpy's libm in the last bit; after float32 rounding we allow 1 ulp. */
    public void testSincos2dKeysWithinOneUlp() {
        int values = 0;
        int differing = 0;
        double maxDiff = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            float[] expected = golden.floats(c.get("key_pos"));
            float[] actual = compute(c, "sincos_2d_keys").float32;
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

    /** MiniCPM-V 4.6's 2x2-window gather tables (window merger and merger MLP), padding rows identity. */
    public void testWindowOrdersAreExact() {
        int n = 0;
        for (Object item : JsonMap.getList(data, "window_cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            int max = JsonMap.getInt(c, "max_patches", 0);
            for (Map.Entry<String, Object> e : JsonMap.getMap(c, "derived_inputs").entrySet()) {
                long[] table = compute(c, (String) e.getValue()).int64;
                List<Object> rows = JsonMap.getList(c, e.getKey());
                for (int b = 0; b < rows.size(); b++) {
                    Check.equal(JsonMap.longArray(rows.get(b), "row"), java.util.Arrays.copyOfRange(table, b * max, (b + 1) * max),
                            e.getValue() + " of chunk " + b + " in " + c.get("tgt_sizes"));
                }
                n++;
            }
        }
        System.out.println("     window orders: " + n + " tables equal");
        Check.isTrue(n >= 8, "window-order cases of both kinds");
    }
}
