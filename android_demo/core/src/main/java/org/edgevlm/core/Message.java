package org.edgevlm.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** One chat message: a role and either plain text or a list of parts (text and {@link #IMAGE}). */
public final class Message {
    /** Sentinel part: "an image goes here" (Python's processing.prompt.IMAGE). */
    public static final Object IMAGE = new Object() {
        @Override
        public String toString() {
            return "IMAGE";
        }
    };

    public final String role; // system | user | assistant
    public final String text; // plain-text content, or null when parts are given
    public final List<Object> parts; // String or IMAGE; null for plain text

    private Message(String role, String text, List<Object> parts) {
        this.role = role;
        this.text = text;
        this.parts = parts;
    }

    public static Message text(String role, String text) {
        return new Message(role, text, null);
    }

    public static Message parts(String role, List<Object> parts) {
        for (Object part : parts) {
            if (part != IMAGE && !(part instanceof String)) {
                throw new IllegalArgumentException("message parts are strings or Message.IMAGE");
            }
        }
        return new Message(role, null, Collections.unmodifiableList(new ArrayList<>(parts)));
    }
}
