package org.edgevlm.core;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One exported component of a bundle (vision, embedding, decoder ...), as manifest/schema.py's Part: its file, how
 * its graph names bind ({@link #binding}), how to open it ({@link #runtime}) and what is only informational
 * ({@link #info}, never read to run).
 */
public final class Part {
    static final List<String> REQUIRED = Arrays.asList("file", "format");
    static final List<String> OPTIONAL = Arrays.asList("dtype", "inputs", "outputs", "data_files", "binding", "runtime",
            "info");

    public final String file; // inside the bundle (null only in a manifest the bundle reader refuses)
    public final String format; // onnx | gguf | mlpackage | npy (a data part: one array)
    public final String dtype; // "fp32", "fp16" or the quantization method
    public final Map<String, Object> inputs; // name -> {"dtype", "shape"}
    public final Map<String, Object> outputs;
    public final List<String> dataFiles; // side files / package folders this part owns
    public final Map<String, Object> binding; // graph names the runtime binds (DecoderBinding, derived inputs)
    public final Map<String, Object> runtime; // how to open it (graph kind, optimization level ...)
    public final Map<String, Object> info; // informational only

    private Part(Section s) {
        file = s.string("file", null);
        format = s.string("format", null);
        dtype = s.string("dtype", "fp32");
        inputs = Collections.unmodifiableMap(s.map("inputs"));
        outputs = Collections.unmodifiableMap(s.map("outputs"));
        dataFiles = Collections.unmodifiableList(s.strings("data_files", true));
        binding = Collections.unmodifiableMap(s.map("binding"));
        runtime = Collections.unmodifiableMap(s.map("runtime"));
        info = Collections.unmodifiableMap(s.map("info"));
    }

    /** {@code where} names the part, e.g. "bundle/manifest.json: part 'decoder'". */
    static Part read(Object json, String where) {
        return new Part(Section.read(json, "Part", where, REQUIRED, OPTIONAL));
    }

    /**
     * The vision graph's inputs the runtime computes from each chunk's patch grid: graph input name -> kind
     * ({@code binding.derived_inputs}; {@link VisionInputs#compute}), in the manifest's order.
     */
    public Map<String, String> derivedInputs() {
        Object spec = binding.get("derived_inputs");
        Map<String, String> out = new LinkedHashMap<>();
        if (spec == null) {
            return out;
        }
        if (!(spec instanceof Map)) {
            throw new BundleException("part " + Py.repr(file) + ": binding.derived_inputs is not a JSON object. "
                    + "Re-export the bundle.");
        }
        for (Map.Entry<String, Object> e : JsonMap.map(spec, "derived_inputs").entrySet()) {
            if (!(e.getValue() instanceof String)) {
                throw new BundleException("part " + Py.repr(file) + ": binding.derived_inputs names kind "
                        + Py.repr(e.getValue()) + " for " + Py.repr(e.getKey()) + ", not a string. Re-export the bundle.");
            }
            out.put(e.getKey(), (String) e.getValue());
        }
        return out;
    }
}
