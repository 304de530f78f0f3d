package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The "square" / "anyres" / "anyres_max" processor kinds against the Python (anyres.json): plans, token counts, pixels. */
public final class AnyresGoldenTest {
    private static final String[] PLAN_FIELDS = {"image_height", "image_width", "feature_side", "best_height",
        "best_width", "resized_height", "resized_width", "pad_top", "pad_left", "grid_rows", "grid_cols", "unpad_top",
        "unpad_left", "unpad_rows", "unpad_cols", "out_rows", "out_cols"};

    private final Map<String, Object> data;

    public AnyresGoldenTest(Golden golden) {
        data = golden.json("anyres.json");
    }

    private static int[] planValues(Anyres.Plan p) {
        return new int[] {p.imageHeight, p.imageWidth, p.featureSide, p.bestHeight, p.bestWidth, p.resizedHeight,
            p.resizedWidth, p.padTop, p.padLeft, p.gridRows, p.gridCols, p.unpadTop, p.unpadLeft, p.unpadRows,
            p.unpadCols, p.outRows, p.outCols};
    }

    public void testPlansTokenCountsAndPixels() {
        Map<String, Object> processors = JsonMap.getMap(data, "processors");
        List<String> failures = new ArrayList<>();
        int n = 0;
        int withPixels = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            String name = JsonMap.getString(c, "processor_name", "");
            ProcessorConfig cfg = ProcessorConfig.fromMap(JsonMap.getMap(processors, name));
            int w = JsonMap.getInt(c, "width", 0);
            int h = JsonMap.getInt(c, "height", 0);
            int images = JsonMap.getInt(c, "n_images", 1);
            String label = name + " " + w + "x" + h + " (" + images + " image(s))";
            try {
                ImagePreprocessor preprocessor = new ImagePreprocessor(cfg);
                int perTile = (cfg.imageSize / cfg.patchSize) * (cfg.imageSize / cfg.patchSize);
                Check.equal(JsonMap.getInt(c, "n_tokens", -1), preprocessor.tokensOf(w, h, images, perTile), "tokens");
                if (c.containsKey("plan")) {
                    Map<String, Object> want = JsonMap.getMap(c, "plan");
                    int[] got = planValues(Anyres.plan(h, w, new Anyres.Settings(cfg), images));
                    for (int i = 0; i < PLAN_FIELDS.length; i++) {
                        Check.equal(JsonMap.getInt(want, PLAN_FIELDS[i], -1), got[i], PLAN_FIELDS[i]);
                    }
                }
                if (c.containsKey("pixel_values_sha256")) {
                    RgbImage image = PatternImage.make(w, h, JsonMap.getInt(c, "seed", 0));
                    PreparedImage prepared = preprocessor.prepare(image, images);
                    Check.equal(JsonMap.getInt(c, "n_chunks", -1), prepared.nChunks(), "chunks");
                    Check.equal(c.get("pixel_values_sha256"), Golden.sha256(prepared.pixelValues()), "pixel_values float32");
                    withPixels++;
                }
            } catch (Check.Failure f) {
                failures.add(label + ": " + f.getMessage());
            }
            n++;
        }
        System.out.println("     anyres/square: " + n + " cases (" + withPixels + " with pixels), " + failures.size()
                + " mismatches");
        Check.isTrue(failures.isEmpty(), failures.size() + " of " + n + " cases differ, first: "
                + failures.subList(0, Math.min(3, failures.size())));
        Check.isTrue(n >= 200 && withPixels >= 100, "at least 200 cases, 100 with pixels");
    }

    public void testBadAnyresSettingsAreClearErrors() {
        Map<String, Object> processors = JsonMap.getMap(data, "processors");
        Map<String, Object> cfg = new java.util.HashMap<>(JsonMap.getMap(processors, "llava-next"));
        cfg.put("options", new java.util.HashMap<String, Object>());
        try {
            new ImagePreprocessor(ProcessorConfig.fromMap(cfg)).tokensOf(10, 10, 1, 16);
            Check.isTrue(false, "no pinpoints must fail");
        } catch (IllegalArgumentException ex) {
            Check.isTrue(ex.getMessage().contains("needs options.pinpoints"), ex.getMessage());
        }
    }
}
