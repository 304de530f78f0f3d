package org.edgevlm.core;

/** Base of the errors a user can act on: the message names the problem and the fix (as edgevlm/errors.py). */
public class EdgeVlmException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public EdgeVlmException(String message) {
        super(message);
    }

    /** The Python class name of the same error ("BundleError", ...), so golden tests can compare kinds. */
    public String kind() {
        return "EdgeVLMError";
    }
}
