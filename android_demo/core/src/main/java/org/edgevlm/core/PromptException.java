package org.edgevlm.core;

/** A prompt does not fit the context, or has a different number of image places than images. */
public final class PromptException extends EdgeVlmException {
    private static final long serialVersionUID = 1L;

    public PromptException(String message) {
        super(message);
    }

    @Override
    public String kind() {
        return "PromptError";
    }
}
