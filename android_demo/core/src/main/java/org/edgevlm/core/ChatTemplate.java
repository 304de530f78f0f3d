package org.edgevlm.core;

import java.util.List;
import java.util.Map;

/** Chat turn templates (processing/config.py ChatTemplate); "{content}" is the message text, images expanded later. */
public final class ChatTemplate {
    public final String systemTemplate;
    public final String userTemplate;
    public final String assistantTemplate;
    public final String generationPrompt;
    public final String defaultSystem; // null: none
    public final String systemMode; // "turn" | "first_user"
    public final String systemJoiner;
    public final String bos;
    public final String stripContent; // "none" | "message" | "parts"
    public final String eos;
    public final List<String> stopStrings;
    public final String textFirstPrefix; // before a message that does not start with an image marker (SmolVLM: " ")

    private ChatTemplate(Map<String, Object> m) {
        systemTemplate = JsonMap.getString(m, "system_template", "<|im_start|>system\n{content}<|im_end|>\n");
        userTemplate = JsonMap.getString(m, "user_template", "<|im_start|>user\n{content}<|im_end|>\n");
        assistantTemplate = JsonMap.getString(m, "assistant_template", "<|im_start|>assistant\n{content}<|im_end|>\n");
        generationPrompt = JsonMap.getString(m, "generation_prompt", "<|im_start|>assistant\n");
        defaultSystem = JsonMap.getString(m, "default_system", null);
        systemMode = JsonMap.getString(m, "system_mode", "turn");
        systemJoiner = JsonMap.getString(m, "system_joiner", "\n\n");
        bos = JsonMap.getString(m, "bos", "");
        stripContent = JsonMap.getString(m, "strip_content", "none");
        eos = JsonMap.getString(m, "eos", "");
        stopStrings = m.containsKey("stop_strings") ? JsonMap.stringList(m.get("stop_strings"), "stop_strings")
                : java.util.Collections.singletonList("<|im_end|>");
        textFirstPrefix = JsonMap.getString(m, "text_first_prefix", "");
        if (!stripContent.equals("none") && !stripContent.equals("message") && !stripContent.equals("parts")) {
            throw new IllegalArgumentException("ChatTemplate.strip_content must be 'none', 'message' or 'parts'");
        }
        if (!systemMode.equals("turn") && !systemMode.equals("first_user")) {
            throw new IllegalArgumentException("ChatTemplate.system_mode must be 'turn' or 'first_user'");
        }
    }

    public static ChatTemplate fromMap(Map<String, Object> m) {
        ConfigKeys.check("ChatTemplate", m, "system_template", "user_template", "assistant_template", "generation_prompt",
                "default_system", "system_mode", "system_joiner", "bos", "strip_content", "eos", "stop_strings",
                "text_first_prefix");
        return new ChatTemplate(m);
    }
}
