package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Prompt texts for every family's layout and chat template against processing/prompt.py (prompts.json). */
public final class PromptGoldenTest {
    private final Map<String, Object> data;

    public PromptGoldenTest(Golden golden) {
        data = golden.json("prompts.json");
    }

    private PromptBuilder builder(String family) {
        Map<String, Object> spec = JsonMap.getMap(JsonMap.getMap(data, "specs"), family);
        return new PromptBuilder(ImageLayout.fromMap(JsonMap.getMap(spec, "layout")),
                ChatTemplate.fromMap(JsonMap.getMap(spec, "chat_template")));
    }

    static List<Message> messages(Object json) {
        if (json instanceof String) {
            return List.of(Message.text("user", (String) json));
        }
        List<Message> out = new ArrayList<>();
        for (Object item : JsonMap.list(json, "messages")) {
            Map<String, Object> m = JsonMap.map(item, "message");
            Object content = m.get("content");
            String role = JsonMap.getString(m, "role", null);
            if (content instanceof String) {
                out.add(Message.text(role, (String) content));
                continue;
            }
            List<Object> parts = new ArrayList<>();
            for (Object part : JsonMap.list(content, "content")) {
                parts.add(part instanceof String ? part : Message.IMAGE);
            }
            out.add(Message.parts(role, parts));
        }
        return out;
    }

    /** Plans of images given by size ("sizes"), by the family's processor kind, as the app plans them. */
    private List<ImagePlan> plans(String family, Object sizes) {
        Map<String, Object> spec = JsonMap.getMap(JsonMap.getMap(data, "specs"), family);
        ImagePreprocessor pre = new ImagePreprocessor(ProcessorConfig.fromMap(JsonMap.getMap(spec, "processor")));
        int tokens = ImageLayout.fromMap(JsonMap.getMap(spec, "layout")).tokensPerChunk;
        List<ImagePlan> out = new ArrayList<>();
        for (Object s : JsonMap.list(sizes, "sizes")) {
            int[] wh = JsonMap.intArray(s, "size");
            out.add(pre.plan(wh[0], wh[1], tokens));
        }
        return out;
    }

    static List<int[]> grids(Object json) {
        List<int[]> out = new ArrayList<>();
        for (Object g : JsonMap.list(json, "grids")) {
            out.add(Golden.grid(g));
        }
        return out;
    }

    public void testPromptsMatchPython() {
        int n = 0;
        int errors = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            String family = JsonMap.getString(c, "family", null);
            PromptBuilder builder = builder(family);
            String name = family + " " + Py.repr(String.valueOf(c.get("messages") != null ? c.get("messages") : c.get("text")));
            if (c.containsKey("sizes")) {  // images by size: per-chunk rows from the processor kind's plan
                List<ImagePlan> plans = plans(family, c.get("sizes"));
                String got = JsonMap.getBool(c, "followup", false)
                        ? builder.followUpPlans(JsonMap.getString(c, "text", null), plans, JsonMap.getInt(c, "images_before", 0))
                        : builder.buildPlans(messages(c.get("messages")), plans, null, true);
                Check.equal(c.get(JsonMap.getBool(c, "followup", false) ? "text_out" : "text"), got, name + " (sized images)");
            } else if (JsonMap.getBool(c, "followup", false)) {
                Check.equal(c.get("text_out"), builder.followUp(JsonMap.getString(c, "text", null), grids(c.get("grids")),
                        JsonMap.getInt(c, "images_before", 0)),
                        name + " follow-up turn");
            } else if (c.containsKey("error")) {
                PromptException ex = Check.raises(PromptException.class, () -> build(builder, c), name);
                Check.equal(c.get("error"), ex.kind(), name + " error kind");
                Check.equal(c.get("message"), ex.getMessage(), name + " error message");
                errors++;
            } else {
                Check.equal(c.get("text"), build(builder, c), name);
                Check.equal(c.get("suffix_text"), builder.suffix(JsonMap.getString(c, "suffix", null)), name + " suffix");
            }
            n++;
        }
        System.out.println("     prompts: " + n + " cases (" + errors + " errors) equal to Python");
        Check.isTrue(n >= 50, "expected the prompt cases of 5 families");
    }

    private static String build(PromptBuilder builder, Map<String, Object> c) {
        return builder.build(messages(c.get("messages")), grids(c.get("grids")), JsonMap.getString(c, "system", null),
                JsonMap.getBool(c, "add_generation_prompt", true));
    }
}
