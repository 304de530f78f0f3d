package org.edgevlm.core;

import java.util.Arrays;
import java.util.Map;
import java.util.TreeSet;

/** Unknown keys in a manifest config dict are an error (as processing/config.py's from_dict), so typos do not pass. */
final class ConfigKeys {
    private ConfigKeys() {
    }

    static void check(String owner, Map<String, Object> data, String... known) {
        TreeSet<String> unknown = new TreeSet<>(data.keySet());
        unknown.removeAll(Arrays.asList(known));
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException(owner + ": unknown keys " + unknown);
        }
    }
}
