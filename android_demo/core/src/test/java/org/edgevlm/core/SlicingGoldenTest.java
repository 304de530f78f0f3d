package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Slice plans, Pillow-exact resizes and float32 vision inputs against the Python processor (slicing.json). */
public final class SlicingGoldenTest {
    private final Map<String, Object> data;

    public SlicingGoldenTest(Golden golden) {
        data = golden.json("slicing.json");
    }

    public void testSlicePlansResizesAndPixelValues() {
        List<String> failures = new ArrayList<>();
        int n = 0;
        for (Object item : JsonMap.getList(data, "slices")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            int w = JsonMap.getInt(c, "width", 0);
            int h = JsonMap.getInt(c, "height", 0);
            String name = w + "x" + h + " " + JsonMap.getMap(c, "processor").entrySet().stream()
                    .filter(e -> e.getKey().matches("max_slice_nums|never_split|resize_align")).collect(java.util.stream.Collectors.toList());
            try {
                checkCase(c, w, h);
            } catch (Check.Failure f) {
                failures.add(name + ": " + f.getMessage());
            }
            n++;
        }
        System.out.println("     slicing: " + n + " cases, " + failures.size() + " mismatches");
        Check.isTrue(failures.isEmpty(), failures.size() + " of " + n + " cases differ, first: " + failures.subList(0, Math.min(3, failures.size())));
        Check.isTrue(n >= 50, "at least 50 image sizes");
    }

    private static void checkCase(Map<String, Object> c, int w, int h) {
        RgbImage image = PatternImage.make(w, h, JsonMap.getInt(c, "seed", 0));
        Check.equal(c.get("image_sha256"), Golden.sha256(image.rgb), "test pattern (formula differs from Python)");
        ProcessorConfig cfg = ProcessorConfig.fromMap(JsonMap.getMap(c, "processor"));
        SlicePlan plan = Slicing.plan(w, h, cfg);
        Check.equal(Golden.grid(c.get("overview_size")), plan.overviewSize, "overview size");
        Check.equal(Golden.grid(c.get("grid")), plan.grid, "grid");
        Check.equal(Golden.grid(c.get("refine_size")), plan.refineSize, "refine size");
        Check.equal(Golden.grid(c.get("slice_size")), plan.sliceSize, "slice size");
        if (c.containsKey("overview_sha256")) { // recorded for small images: says which resize differs
            RgbImage overview = Resample.resize(image, plan.overviewSize[0], plan.overviewSize[1], Resample.Filter.BICUBIC);
            Check.equal(c.get("overview_sha256"), Golden.sha256(overview.rgb), "overview pixels (bicubic)");
        }
        if (plan.refineSize != null && c.containsKey("refine_sha256")) {
            RgbImage refine = Resample.resize(image, plan.refineSize[0], plan.refineSize[1], Resample.Filter.BICUBIC);
            Check.equal(c.get("refine_sha256"), Golden.sha256(refine.rgb), "refined image pixels (bicubic)");
        }
        PreparedImage prepared = new ImagePreprocessor(cfg).prepare(image);
        List<Object> tgt = JsonMap.getList(c, "tgt_sizes");
        Check.equal(tgt.size(), prepared.nChunks(), "chunks");
        for (int i = 0; i < tgt.size(); i++) {
            Check.equal(JsonMap.intArray(tgt.get(i), "tgt"), prepared.tgtSizes[i], "tgt_sizes[" + i + "]");
        }
        Check.equal(c.get("pixel_values_sha256"), Golden.sha256(prepared.pixelValues()), "pixel_values float32");
        Check.equal(c.get("patch_mask_sha256"), Golden.sha256(prepared.patchMask()), "patch_attention_mask");
    }

    /** Processor kind slice_merge (MiniCPM-V 4.6, both downsample modes): every chunk's feature rows from the size. */
    public void testMergedSlicePlans() {
        int n = 0;
        for (Object item : JsonMap.getList(data, "merged_plans")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            ProcessorConfig cfg = ProcessorConfig.fromMap(JsonMap.getMap(c, "processor"));
            int w = JsonMap.getInt(c, "width", 0);
            int h = JsonMap.getInt(c, "height", 0);
            String name = w + "x" + h + " " + cfg.options.get("downsample_mode");
            ImagePlan plan = new ImagePreprocessor(cfg).plan(w, h, 0);
            Check.equal(Golden.grid(c.get("grid")), plan.grid, name + " grid");
            Check.equal(JsonMap.getInt(c, "overview_tokens", -1), plan.overviewTokens, name + " overview rows");
            Check.equal(JsonMap.intArray(c.get("slice_tokens"), "slice_tokens"), plan.sliceTokens, name + " slice rows");
            n++;
        }
        System.out.println("     merged slice plans: " + n + " cases equal");
        Check.isTrue(n >= 60, "merged plans for both downsample modes");
    }

    public void testFixedSizeResizes() {
        int n = 0;
        for (Object item : JsonMap.getList(data, "fixed")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            ProcessorConfig cfg = ProcessorConfig.fromMap(JsonMap.getMap(c, "processor"));
            RgbImage image = PatternImage.make(JsonMap.getInt(c, "width", 0), JsonMap.getInt(c, "height", 0),
                    JsonMap.getInt(c, "seed", 0));
            String name = image.width + "x" + image.height + " -> " + cfg.imageSize + " " + cfg.resample;
            RgbImage resized = Resample.resize(image, cfg.imageSize, cfg.imageSize, Resample.Filter.of(cfg.resample));
            Check.equal(c.get("resized_sha256"), Golden.sha256(resized.rgb), name + " pixels");
            Check.equal(c.get("pixel_values_sha256"), Golden.sha256(new ImagePreprocessor(cfg).prepare(image).pixelValues()),
                    name + " float32");
            n++;
        }
        System.out.println("     fixed-size resizes: " + n + " cases equal");
    }

    public void testTiledProcessors() {
        List<String> failures = new ArrayList<>();
        int n = 0;
        int pixels = 0;
        for (Object item : JsonMap.getList(data, "tiles")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            ProcessorConfig cfg = ProcessorConfig.fromMap(JsonMap.getMap(c, "processor"));
            int w = JsonMap.getInt(c, "width", 0);
            int h = JsonMap.getInt(c, "height", 0);
            String name = w + "x" + h + " " + cfg.kind + " " + cfg.imageSize + " " + cfg.options;
            try {
                ImagePreprocessor preprocessor = new ImagePreprocessor(cfg);
                Check.equal(Golden.grid(c.get("grid")), preprocessor.gridOf(w, h), "grid");
                if (c.containsKey("pixel_values_sha256")) {
                    PreparedImage prepared = preprocessor.prepare(PatternImage.make(w, h, JsonMap.getInt(c, "seed", 0)));
                    Check.equal(JsonMap.getInt(c, "n_chunks", 0), prepared.nChunks(), "tiles");
                    Check.equal(c.get("pixel_values_sha256"), Golden.sha256(prepared.pixelValues()), "pixel_values float32");
                    pixels++;
                }
            } catch (Check.Failure f) {
                failures.add(name + ": " + f.getMessage());
            }
            n++;
        }
        System.out.println("     tiles: " + n + " plans, " + pixels + " with pixels, " + failures.size() + " mismatches");
        Check.isTrue(failures.isEmpty(), failures.size() + " of " + n + " cases differ, first: "
                + failures.subList(0, Math.min(3, failures.size())));
        Check.isTrue(n >= 90 && pixels >= 40, "at least 90 tiled plans, 40 with pixels");
    }

    public void testNormalizeTablesAreBitExact() {
        for (Object item : JsonMap.getList(data, "normalize")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            double[] mean = doubles(c.get("mean"));
            double[] std = doubles(c.get("std"));
            float[][] table = Normalize.table(JsonMap.getDouble(c, "rescale_factor", 0), mean, std);
            List<Object> expected = JsonMap.getList(c, "table");
            for (int ch = 0; ch < 3; ch++) {
                List<Object> row = JsonMap.list(expected.get(ch), "row");
                for (int v = 0; v < 256; v++) {
                    float e = (float) JsonMap.asDouble(row.get(v), "value");
                    Check.isTrue(Float.floatToIntBits(e) == Float.floatToIntBits(table[ch][v]),
                            "table[" + ch + "][" + v + "] = " + table[ch][v] + ", Python " + e + " (mean " + mean[ch] + ")");
                }
            }
        }
    }

    private static double[] doubles(Object v) {
        List<Object> items = JsonMap.list(v, "values");
        double[] out = new double[items.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = JsonMap.asDouble(items.get(i), "value");
        }
        return out;
    }
}
