package org.edgevlm.core;

import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** One exported component of a bundle (vision, embedding, decoder ...), as edgevlm/manifest.py's Part. */
public final class Part {
    static final List<String> FIELDS = Arrays.asList("file", "format", "inputs", "outputs", "kv", "dtype", "extra");

    public final String file;
    public final String format; // onnx | gguf | mlpackage
    public final Map<String, Object> inputs; // name -> {"dtype", "shape"}
    public final Map<String, Object> outputs;
    public final Map<String, Object> kv; // %d templates, e.g. {"past_key": "past_key.%d"}
    public final String dtype;
    public final Map<String, Object> extra; // part-specific data (max_context, masks, derived inputs ...)

    private Part(Map<String, Object> m) {
        file = JsonMap.getString(m, "file", null);
        format = JsonMap.getString(m, "format", null);
        inputs = Collections.unmodifiableMap(JsonMap.getMap(m, "inputs"));
        outputs = Collections.unmodifiableMap(JsonMap.getMap(m, "outputs"));
        kv = Collections.unmodifiableMap(JsonMap.getMap(m, "kv"));
        dtype = JsonMap.getString(m, "dtype", "fp32");
        extra = Collections.unmodifiableMap(JsonMap.getMap(m, "extra"));
    }

    /** Reads one part entry; the detail of an IllegalArgumentException says what is wrong with it. */
    static Part fromJson(String name, Object value) {
        Map<String, Object> m = JsonMap.map(value, "part " + Py.repr(name));
        Set<String> unknown = new HashSet<>(m.keySet());
        unknown.removeAll(FIELDS);
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("part " + Py.repr(name) + " has unknown keys " + unknown);
        }
        for (String required : Arrays.asList("file", "format")) {
            if (!m.containsKey(required)) {
                throw new IllegalArgumentException("part " + Py.repr(name) + " lacks " + Py.repr(required));
            }
        }
        return new Part(m);
    }

    /** The %d template of a KV-cache tensor name for one layer, e.g. kvName("past_key", 3) = "past_key.3". */
    public String kvName(String kind, int layer) {
        Object template = kv.get(kind);
        if (!(template instanceof String)) {
            throw new BundleException("part " + file + " has no KV name for " + Py.repr(kind)
                    + ". Re-export the bundle with this edgevlm version.");
        }
        return ((String) template).replace("%d", Integer.toString(layer));
    }
}
