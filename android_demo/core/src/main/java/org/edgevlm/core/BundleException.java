package org.edgevlm.core;

/** A bundle directory or its manifest is missing, damaged, tampered with or of an unknown version. */
public final class BundleException extends EdgeVlmException {
    private static final long serialVersionUID = 1L;

    public BundleException(String message) {
        super(message);
    }

    @Override
    public String kind() {
        return "BundleError";
    }
}
