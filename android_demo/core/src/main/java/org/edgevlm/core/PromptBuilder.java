package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;

/**
 * Prompt text from the manifest's layout and chat template, ported from edgevlm/processing/prompt.py.
 * The chat template is rendered over the image markers first and only then is each marker replaced by
 * its image's placeholder (templates that trim text trim the marker, not the placeholder).
 * Grids are {@code int[]{cols, rows}} or null (not sliced / fixed-size processor).
 */
public final class PromptBuilder {
    private final ImageLayout layout;
    private final ChatTemplate template;

    public PromptBuilder(ImageLayout layout, ChatTemplate template) {
        this.layout = layout;
        this.template = template;
    }

    /** Placeholder text of one image ({@code index} is its 0-based position in the conversation) whose every
     * chunk gives tokensPerChunk rows. */
    public String imagePlaceholder(int[] grid, int index) {
        return imagePlaceholder(ImagePlan.uniform(grid, layout.tokensPerChunk), index);
    }

    /** Placeholder text of one image from its plan: the overview's run of feature tokens and one run per slice,
     * each of that chunk's rows; {row}/{col} in the slice template are the tile's 1-based position. */
    public String imagePlaceholder(ImagePlan plan, int index) {
        int[] grid = plan.grid;
        StringBuilder text = new StringBuilder();
        if (!layout.imageIdTemplate.isEmpty()) {
            text.append(Py.format(layout.imageIdTemplate, "index", Integer.toString(index)));
        }
        String overview = Py.format(layout.overviewTemplate, "features", Py.repeat(layout.featureToken, plan.overviewTokens));
        StringBuilder tiles = new StringBuilder();
        if (grid != null) {
            List<String> rows = new ArrayList<>();
            for (int r = 0; r < grid[1]; r++) {
                StringBuilder row = new StringBuilder();
                for (int c = 0; c < grid[0]; c++) {
                    java.util.Map<String, String> fields = new java.util.HashMap<>();
                    fields.put("features", Py.repeat(layout.featureToken, plan.sliceTokens[r * grid[0] + c]));
                    fields.put("row", Integer.toString(r + 1));
                    fields.put("col", Integer.toString(c + 1));
                    row.append(Py.format(layout.sliceTemplate, fields));
                }
                rows.add(row.toString());
            }
            tiles.append(layout.slicesOpen).append(String.join(layout.rowSeparator, rows)).append(layout.slicesClose);
        }
        text.append(layout.imagePrefix);
        if (layout.overviewLast) {
            text.append(tiles).append(overview);
        } else {
            text.append(overview).append(tiles);
        }
        return text.append(layout.imageSuffix).toString();
    }

    private String contentText(Message m, boolean stripParts) {
        if (m.text != null) {
            return m.text;
        }
        List<String> parts = new ArrayList<>();
        for (Object part : m.parts) {
            parts.add(part == Message.IMAGE ? layout.marker : stripParts ? Py.strip((String) part) : (String) part);
        }
        return String.join(layout.autoMarkerJoiner, parts);
    }

    private static int count(String text, String needle) {
        if (needle.isEmpty()) {
            return text.length() + 1; // Python's str.count("") semantics
        }
        int n = 0;
        for (int i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length())) {
            n++;
        }
        return n;
    }

    /** (role, text) turns with exactly one marker per image (inserted into the last user turn when there are none);
     * a text that does not start with a marker gets the template's textFirstPrefix. */
    public List<String[]> messageTurns(List<Message> messages, int nImages) {
        boolean stripParts = template.stripContent.equals("parts");
        List<String[]> turns = new ArrayList<>();
        for (Message m : messages) {
            turns.add(new String[] {m.role, contentText(m, stripParts)});
        }
        int markers = 0;
        for (String[] t : turns) {
            markers += count(t[1], layout.marker);
        }
        if (markers == 0 && nImages > 0) {
            int lastUser = -1;
            for (int i = 0; i < turns.size(); i++) {
                if (turns.get(i)[0].equals("user")) {
                    lastUser = i;
                }
            }
            if (lastUser < 0) {
                throw new PromptException("images were given but the prompt has no user message to put them in");
            }
            String text = turns.get(lastUser)[1];
            if (stripParts) {
                text = Py.strip(text); // the text becomes one part beside the images
            }
            List<String> parts = new ArrayList<>();
            for (int i = 0; i < nImages; i++) {
                parts.add(layout.marker);
            }
            if (layout.autoMarkerPosition.equals("start")) {
                parts.add(text);
            } else {
                parts.add(0, text);
            }
            turns.get(lastUser)[1] = String.join(layout.autoMarkerJoiner, parts);
            markers = nImages;
        }
        if (markers != nImages) {
            throw new PromptException("the prompt has " + markers + " image marker(s) " + Py.repr(layout.marker) + " but "
                    + nImages + " image(s) were given; use one marker per image or none at all");
        }
        if (!template.textFirstPrefix.isEmpty()) {
            for (String[] t : turns) {
                if (!t[1].startsWith(layout.marker)) {
                    t[1] = template.textFirstPrefix + t[1];
                }
            }
        }
        return turns;
    }

    /** Chat text over (role, text) turns; the texts still hold image markers. */
    public String renderChat(List<String[]> turnsIn, boolean addGenerationPrompt, String system) {
        List<String[]> turns = new ArrayList<>();
        if (system != null) {
            turns.add(new String[] {"system", template.textFirstPrefix + system});
        }
        for (String[] t : turnsIn) {
            if (system == null || !t[0].equals("system")) {
                turns.add(t);
            }
        }
        boolean hasSystem = false;
        for (String[] t : turns) {
            hasSystem |= t[0].equals("system");
        }
        if (!hasSystem && template.defaultSystem != null) {
            turns.add(0, new String[] {"system", template.textFirstPrefix + template.defaultSystem});
        }
        // "message": Jinja "| trim" on the whole message (Llama-3); "parts" trimmed each part in messageTurns.
        boolean strip = !template.stripContent.equals("none");
        StringBuilder out = new StringBuilder(template.bos);
        String pendingSystem = null;
        for (String[] t : turns) {
            String role = t[0];
            String text = t[1];
            switch (role) {
                case "system":
                    if (template.systemMode.equals("first_user")) {
                        pendingSystem = text; // Gemma 3 does not trim the system text
                    } else {
                        out.append(Py.format(template.systemTemplate, "content", strip ? Py.strip(text) : text));
                    }
                    break;
                case "user":
                    String content = strip ? Py.strip(text) : text;
                    if (pendingSystem != null) {
                        content = pendingSystem + template.systemJoiner + content;
                        pendingSystem = null;
                    }
                    out.append(Py.format(template.userTemplate, "content", content));
                    break;
                case "assistant":
                    out.append(Py.format(template.assistantTemplate, "content", strip ? Py.strip(text) : text));
                    break;
                default:
                    throw new PromptException("unknown chat role " + Py.repr(role) + "; use system, user or assistant");
            }
        }
        if (addGenerationPrompt) {
            out.append(template.generationPrompt);
        }
        return out.toString();
    }

    /** Replaces the i-th marker by image i's placeholder; puts after_last_image after the last one. */
    public String expandImages(String text, List<int[]> grids) {
        return expandImages(text, grids, 0);
    }

    /** {@code firstIndex}: images already in the conversation (image ids continue across turns). */
    public String expandImages(String text, List<int[]> grids, int firstIndex) {
        return expandPlans(text, uniform(grids), firstIndex);
    }

    private List<ImagePlan> uniform(List<int[]> grids) {
        List<ImagePlan> plans = new ArrayList<>();
        for (int[] grid : grids) {
            plans.add(ImagePlan.uniform(grid, layout.tokensPerChunk));
        }
        return plans;
    }

    /** As {@link #expandImages} with each image's plan (chunks giving different row counts). */
    public String expandPlans(String text, List<ImagePlan> plans, int firstIndex) {
        List<String> chunks = splitAll(text, layout.marker);
        if (chunks.size() - 1 != plans.size()) {
            throw new PromptException("the prompt has " + (chunks.size() - 1) + " image marker(s) " + Py.repr(layout.marker)
                    + " but " + plans.size() + " image(s) were given");
        }
        StringBuilder out = new StringBuilder(chunks.get(0));
        for (int i = 0; i < plans.size(); i++) {
            out.append(imagePlaceholder(plans.get(i), firstIndex + i));
            if (i == plans.size() - 1) {
                out.append(layout.afterLastImage);
            }
            out.append(chunks.get(i + 1));
        }
        return out.toString();
    }

    private static List<String> splitAll(String text, String sep) {
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = text.indexOf(sep); i >= 0; i = text.indexOf(sep, start)) {
            out.add(text.substring(start, i));
            start = i + sep.length();
        }
        out.add(text.substring(start));
        return out;
    }

    /** Full prompt text (build_prompt): one grid per image, in prompt order. */
    public String build(List<Message> messages, List<int[]> grids, String system, boolean addGenerationPrompt) {
        return buildPlans(messages, uniform(grids), system, addGenerationPrompt);
    }

    /** Full prompt text with one plan per image, in prompt order. */
    public String buildPlans(List<Message> messages, List<ImagePlan> plans, String system, boolean addGenerationPrompt) {
        List<String[]> turns = messageTurns(messages, plans.size());
        return expandPlans(renderChat(turns, addGenerationPrompt, system), plans, 0);
    }

    public String build(String userText, List<int[]> grids, String system) {
        return build(java.util.Collections.singletonList(Message.text("user", userText)), grids, system, true);
    }

    /** PaliGemma-style scoring suffix, tokenised separately: suffix + eos. */
    public String suffix(String suffix) {
        return suffix == null ? "" : suffix + template.eos;
    }

    /**
     * Text of a follow-up chat turn (runtime/turn.py turn_text after the first turn): close the answer, user turn,
     * generation cue; {@code imagesBefore}: images of earlier turns, so this turn's image ids continue after theirs.
     */
    public String followUp(String text, List<int[]> grids, int imagesBefore) {
        return followUpPlans(text, uniform(grids), imagesBefore);
    }

    /** As {@link #followUp} with each image's plan. */
    public String followUpPlans(String text, List<ImagePlan> plans, int imagesBefore) {
        List<String[]> turns = messageTurns(java.util.Collections.singletonList(Message.text("user", text)), plans.size());
        String content = turns.get(0)[1];
        if (!template.stripContent.equals("none")) {
            content = Py.strip(content);
        }
        int at = template.assistantTemplate.indexOf("{content}");
        String close = template.assistantTemplate.substring(at + "{content}".length()); // e.g. "<|im_end|>\n"
        String turn = close + Py.format(template.userTemplate, "content", content) + template.generationPrompt;
        return plans.isEmpty() ? turn : expandPlans(turn, plans, imagesBefore);
    }
}
