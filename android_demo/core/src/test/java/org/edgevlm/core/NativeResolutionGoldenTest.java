package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Native-resolution preprocessing (Qwen2-VL) against runtime/images.py's native_resolution kind
 * (native_resolution.json): plans from the size alone (per-request pixel budgets included), the runtime's errors,
 * Pillow-exact resizes, float32 patch rows, and prompts whose placeholder runs come from the plans.
 */
public final class NativeResolutionGoldenTest {
    private final Map<String, Object> data;
    private final Map<String, Object> spec;

    public NativeResolutionGoldenTest(Golden golden) {
        data = golden.json("native_resolution.json");
        spec = JsonMap.getMap(data, "spec");
    }

    private ProcessorConfig config() {
        return ProcessorConfig.fromMap(JsonMap.getMap(spec, "processor"));
    }

    private static Long optionalLong(Map<String, Object> c, String key) {
        return c.get(key) == null ? null : JsonMap.asLong(c.get(key), key);
    }

    /** The settings of one request, checked as the runtime checks them before any image work. */
    private NativeResolution request(Map<String, Object> c) {
        NativeResolution settings = new NativeResolution(config()).withPixels(optionalLong(c, "min_pixels"),
                optionalLong(c, "max_pixels"));
        settings.check();
        return settings;
    }

    public void testPlansPixelsAndErrorsMatchPython() {
        List<String> failures = new ArrayList<>();
        int n = 0;
        int errors = 0;
        for (Object item : JsonMap.getList(data, "images")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            int w = JsonMap.getInt(c, "width", 0);
            int h = JsonMap.getInt(c, "height", 0);
            String name = w + "x" + h + " min " + c.get("min_pixels") + " max " + c.get("max_pixels");
            try {
                if (c.containsKey("error")) {
                    ImageException ex = Check.raises(ImageException.class, () -> request(c).runtimePlan(w, h), name);
                    Check.equal(c.get("error"), ex.kind(), "error kind");
                    Check.equal(c.get("message"), ex.getMessage(), "error message");
                    errors++;
                } else {
                    checkImage(c, w, h);
                }
            } catch (Check.Failure f) {
                failures.add(name + ": " + f.getMessage());
            }
            n++;
        }
        System.out.println("     native resolution: " + n + " cases (" + errors + " errors), " + failures.size() + " mismatches");
        Check.isTrue(failures.isEmpty(), failures.size() + " of " + n + " differ, first: " + failures.subList(0, Math.min(3, failures.size())));
        Check.isTrue(n >= 100 && errors >= 5, "the golden file has the size and error cases");
    }

    private void checkImage(Map<String, Object> c, int w, int h) {
        NativeResolution settings = request(c);
        NativeResolution.Plan plan = settings.runtimePlan(w, h);
        Check.equal(JsonMap.intArray(c.get("resized_size"), "resized"), new int[] {plan.resizedWidth, plan.resizedHeight},
                "resized size");
        Check.equal(JsonMap.intArray(c.get("grid_thw"), "grid"), plan.gridThw, "grid_thw");
        Check.equal(JsonMap.getInt(c, "n_tokens", -1), plan.nTokens, "image tokens");
        Check.equal(JsonMap.intArray(c.get("position_grid"), "grid"), plan.imagePlan.positionGrid, "M-RoPE grid");
        if (c.containsKey("pixel_values_sha256")) {
            RgbImage image = PatternImage.make(w, h, JsonMap.getInt(c, "seed", 0));
            RgbImage resized = Resample.resize(image, plan.resizedWidth, plan.resizedHeight, Resample.Filter.BICUBIC);
            Check.equal(c.get("resized_sha256"), Golden.sha256(resized.rgb), "resized pixels (bicubic)");
            Check.equal(c.get("pixel_values_sha256"), Golden.sha256(settings.preprocess(image, plan)), "patch rows float32");
        }
    }

    public void testPromptsCarryThePlansTokenCounts() {
        PromptBuilder builder = new PromptBuilder(ImageLayout.fromMap(JsonMap.getMap(spec, "layout")),
                ChatTemplate.fromMap(JsonMap.getMap(spec, "chat_template")));
        int n = 0;
        for (Object item : JsonMap.getList(data, "prompts")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            NativeResolution settings = request(c);
            List<ImagePlan> plans = new ArrayList<>();
            for (Object size : JsonMap.getList(c, "sizes")) {
                int[] wh = JsonMap.intArray(size, "size");
                plans.add(settings.runtimePlan(wh[0], wh[1]).imagePlan);
            }
            Check.equal(JsonMap.intArray(c.get("tokens"), "tokens"), plans.stream().mapToInt(ImagePlan::nTokens).toArray(),
                    "image tokens");
            String text = JsonMap.getString(c, "text", null);
            int before = JsonMap.getInt(c, "turns_before", 0);
            String prompt = before == 0 ? builder.buildPlans(List.of(Message.text("user", text)), plans, null, true)
                    : builder.followUpPlans(text, plans, before);
            Check.equal(c.get("prompt"), prompt, "prompt of " + c.get("sizes"));
            n++;
        }
        Check.isTrue(n >= 3, "prompt cases");
    }

    public void testImagePreprocessorDispatchesTheKind() {
        RgbImage image = PatternImage.make(300, 200, 0);
        PreparedImage prepared = new ImagePreprocessor(config()).prepare(image);
        NativeResolution settings = new NativeResolution(config());
        NativeResolution.Plan plan = settings.runtimePlan(300, 200);
        Check.equal(plan.gridThw, prepared.gridThw, "grid_thw");
        Check.equal(Golden.sha256(settings.preprocess(image, plan)), Golden.sha256(prepared.pixelValues()), "rows");
        Check.raises(ImageException.class, () -> new ImagePreprocessor(config()).prepare(PatternImage.make(20, 20, 0)),
                "an image below one token");
    }
}
