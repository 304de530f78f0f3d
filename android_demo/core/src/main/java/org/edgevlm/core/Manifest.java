package org.edgevlm.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * A bundle's manifest.json, read and checked with the same rules and messages as edgevlm/manifest.py
 * ({@code Manifest.from_dict} and {@code check_values}). Per-family behaviour is data here: the app
 * reads {@link #processor}, {@link #layout}, {@link #chatTemplate} and the parts, never the family name.
 */
public final class Manifest {
    public static final int SCHEMA_VERSION = 1;
    public static final String[] FORMATS = {"onnx", "gguf", "coreml"};
    public static final String[] ATTENTION_KINDS = {"causal", "prefix_lm", "bidirectional_image"};
    static final List<String> REQUIRED = Arrays.asList("format", "family", "attention", "text", "vision", "processor",
            "layout", "chat_template", "tokenizer", "parts");
    static final List<String> OPTIONAL = Arrays.asList("generation", "source", "quantization", "validation", "files",
            "schema_version");

    public final String format;
    public final String family; // informational only: nothing in the core branches on it
    public final String attention;
    public final Map<String, Object> text;
    public final Map<String, Object> vision;
    public final ProcessorConfig processor;
    public final ImageLayout layout;
    public final ChatTemplate chatTemplate;
    public final Map<String, Object> tokenizer; // {"file", "eos_ids", ...}
    public final Map<String, Part> parts;
    public final Map<String, Object> generation;
    public final Map<String, Object> source;
    public final Map<String, FileRecord> files;

    /** sha256 and size of one bundle file. */
    public static final class FileRecord {
        public final Object sha256; // String when well formed; compared as Python compares (any mismatch fails)
        public final Object size;

        FileRecord(Object sha256, Object size) {
            this.sha256 = sha256;
            this.size = size;
        }
    }

    private Manifest(Map<String, Object> data, Map<String, Part> parts, String where) {
        format = stringField(data, "format", where);
        family = stringField(data, "family", where);
        attention = stringField(data, "attention", where);
        text = Collections.unmodifiableMap(JsonMap.getMap(data, "text"));
        vision = Collections.unmodifiableMap(JsonMap.getMap(data, "vision"));
        try {
            processor = ProcessorConfig.fromMap(JsonMap.getMap(data, "processor"));
            layout = ImageLayout.fromMap(JsonMap.getMap(data, "layout"));
            chatTemplate = ChatTemplate.fromMap(JsonMap.getMap(data, "chat_template"));
        } catch (IllegalArgumentException ex) {
            throw new BundleException(where + ": " + ex.getMessage() + ". Re-export the bundle or upgrade the app.");
        }
        tokenizer = Collections.unmodifiableMap(JsonMap.getMap(data, "tokenizer"));
        this.parts = Collections.unmodifiableMap(parts);
        generation = Collections.unmodifiableMap(JsonMap.getMap(data, "generation"));
        source = Collections.unmodifiableMap(JsonMap.getMap(data, "source"));
        Map<String, FileRecord> fileMap = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : JsonMap.getMap(data, "files").entrySet()) {
            Map<String, Object> record = JsonMap.map(e.getValue(), "files[" + e.getKey() + "]");
            fileMap.put(e.getKey(), new FileRecord(record.get("sha256"), record.get("size")));
        }
        files = Collections.unmodifiableMap(fileMap);
    }

    private static String stringField(Map<String, Object> data, String key, String where) {
        Object v = data.get(key);
        if (!(v instanceof String)) {
            throw new BundleException(where + ": the manifest's " + key + " is " + Py.repr(v)
                    + ", not a string. Re-export the bundle.");
        }
        return (String) v;
    }

    /** From parsed JSON; {@code where} (the manifest path) starts every error message. */
    public static Manifest fromJson(Object json, String where) {
        if (!(json instanceof Map)) {
            throw new BundleException(where + ": the manifest is not a JSON object. Re-export the bundle.");
        }
        Map<String, Object> data = JsonMap.map(json, "manifest");
        Object version = data.get("schema_version");
        if (!isSchemaVersion(version)) {
            String fix = (version instanceof Long && (Long) version > SCHEMA_VERSION)
                    ? "upgrade edgevlm (pip install -U edgevlm) to read it"
                    : "re-export the bundle with this edgevlm version (edgevlm export ...)";
            throw new BundleException(where + ": unknown manifest schema_version " + Py.repr(version)
                    + "; this edgevlm reads version " + SCHEMA_VERSION + ". To fix: " + fix + ".");
        }
        List<String> missing = new ArrayList<>();
        for (String key : REQUIRED) {
            if (!data.containsKey(key)) {
                missing.add(key);
            }
        }
        if (!missing.isEmpty()) {
            Collections.sort(missing);
            throw new BundleException(where + ": the manifest lacks " + String.join(", ", missing) + ". Re-export the bundle.");
        }
        TreeSet<String> unknown = new TreeSet<>(data.keySet());
        unknown.removeAll(REQUIRED);
        unknown.removeAll(OPTIONAL);
        if (!unknown.isEmpty()) {
            throw new BundleException(where + ": the manifest has unknown fields " + String.join(", ", unknown)
                    + ". Re-export the bundle or upgrade edgevlm.");
        }
        Map<String, Part> parts = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Object> e : JsonMap.map(data.get("parts"), "parts").entrySet()) {
                parts.put(e.getKey(), Part.fromJson(e.getKey(), e.getValue()));
            }
        } catch (IllegalArgumentException ex) {
            throw new BundleException(where + ": a part entry is malformed (" + ex.getMessage() + "). Re-export the bundle.");
        }
        Manifest manifest = new Manifest(data, parts, where);
        manifest.checkValues(where);
        return manifest;
    }

    /** Python compares {@code version != 1}: an int or a float equal to 1 passes, anything else fails. */
    private static boolean isSchemaVersion(Object version) {
        return version instanceof Number && !(version instanceof Double && ((Double) version).isNaN())
                && ((Number) version).doubleValue() == SCHEMA_VERSION;
    }

    void checkValues(String where) {
        if (!Arrays.asList(FORMATS).contains(format)) {
            throw new BundleException(where + ": format " + Py.repr(format) + " is not one of " + Py.reprTuple(FORMATS) + ".");
        }
        if (!Arrays.asList(ATTENTION_KINDS).contains(attention)) {
            throw new BundleException(where + ": attention " + Py.repr(attention) + " is not one of "
                    + Py.reprTuple(ATTENTION_KINDS) + ".");
        }
        for (Map.Entry<String, Part> e : parts.entrySet()) {
            if (!files.containsKey(e.getValue().file)) {
                throw new BundleException(where + ": part " + Py.repr(e.getKey()) + " names file "
                        + Py.repr(e.getValue().file) + ", which the manifest's file list does not record. Re-export the bundle.");
            }
        }
    }

    /** The part the runtime needs, or a clear error naming what to re-export. */
    public Part part(String name) {
        Part p = parts.get(name);
        if (p == null) {
            throw new BundleException("the manifest has no " + Py.repr(name) + " part, which the app needs. "
                    + "Re-export with --format onnx.");
        }
        return p;
    }

    /** Token ids that end generation: the tokenizer's eos_ids (stop strings are added by the Generator). */
    public List<Long> eosIds() {
        List<Long> out = new ArrayList<>();
        for (Object v : JsonMap.getList(tokenizer, "eos_ids")) {
            out.add(JsonMap.asLong(v, "eos_ids"));
        }
        return out;
    }
}
