package org.edgevlm.core;

/** An input image is empty or cannot be processed with the bundle's processor settings. */
public final class ImageException extends EdgeVlmException {
    private static final long serialVersionUID = 1L;

    public ImageException(String message) {
        super(message);
    }

    @Override
    public String kind() {
        return "ImageError";
    }
}
