package org.edgevlm.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * A bundle's manifest.json (schema 2), read and checked with the same rules, in the same order and with the same
 * messages as edgevlm/manifest/schema.py ({@code Manifest.from_dict} and {@code check_values}). Each fact has one
 * home: the text model's shape in {@link #text}, how image features are made in {@link #vision}, every token id in
 * {@link #tokenizer}, graph names in each part's binding. Per-family behaviour is data: the app reads the sections,
 * {@link #processor}, {@link #layout}, {@link #chatTemplate} and the parts, never the family name.
 *
 * <p>Schema-1 bundles (edgevlm before the family contract) are refused with the unknown-version message: the
 * Python runtime reads them (manifest/upgrade.py), the app does not.
 */
public final class Manifest {
    public static final int SCHEMA_VERSION = 2;
    public static final String[] FORMATS = {"onnx", "gguf", "coreml"};
    public static final String[] PART_FORMATS = {"onnx", "gguf", "mlpackage", "npy"}; // npy: data parts (arrays)
    public static final String[] ATTENTION_KINDS = {"causal", "prefix", "image_blocks"};
    public static final String[] LAYER_TYPES = {"full_attention", "sliding_attention", "linear_attention"};
    static final List<String> REQUIRED = Arrays.asList("format", "family", "text", "vision", "tokenizer", "processor",
            "layout", "chat_template", "parts");
    static final List<String> OPTIONAL = Arrays.asList("generation", "source", "quantization", "validation", "files",
            "schema_version");

    public final String format;
    public final String family; // informational only: nothing in the core branches on it
    public final String attention; // layout.attention: causal | prefix | image_blocks
    public final TextInfo text;
    public final VisionInfo vision; // null: the bundle takes no images
    public final TokenizerInfo tokenizer;
    public final ProcessorConfig processor;
    public final ImageLayout layout;
    public final ChatTemplate chatTemplate;
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

    private Manifest(Map<String, Object> data, Map<String, Part> parts, TextInfo text, VisionInfo vision,
                     TokenizerInfo tokenizer, Map<String, FileRecord> files, String where) {
        format = (String) data.get("format"); // checked by checkValues
        Object name = data.get("family");
        family = name instanceof String ? (String) name : Py.repr(name);
        attention = (String) JsonMap.map(data.get("layout"), "layout").getOrDefault("attention", "causal");
        this.text = text;
        this.vision = vision;
        this.tokenizer = tokenizer;
        this.parts = Collections.unmodifiableMap(parts);
        this.files = Collections.unmodifiableMap(files);
        try {
            processor = ProcessorConfig.fromMap(JsonMap.map(data.get("processor"), "processor"));
            layout = ImageLayout.fromMap(JsonMap.map(data.get("layout"), "layout"));
            chatTemplate = ChatTemplate.fromMap(JsonMap.map(data.get("chat_template"), "chat_template"));
            generation = Collections.unmodifiableMap(JsonMap.getMap(data, "generation"));
            source = Collections.unmodifiableMap(JsonMap.getMap(data, "source"));
        } catch (IllegalArgumentException ex) {
            throw new BundleException(where + ": " + ex.getMessage() + ". Re-export the bundle or upgrade the app.");
        }
    }

    /** From parsed JSON; {@code where} (the manifest path) starts every error message. */
    public static Manifest fromJson(Object json, String where) {
        if (!(json instanceof Map)) {
            throw new BundleException(where + ": the manifest is not a JSON object. Re-export the bundle.");
        }
        Map<String, Object> data = JsonMap.map(json, "manifest");
        checkVersion(data.get("schema_version"), where);
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
        if (!(data.get("parts") instanceof Map)) {
            throw new BundleException(where + ": parts is not a JSON object. Re-export the bundle.");
        }
        Map<String, Part> parts = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : JsonMap.map(data.get("parts"), "parts").entrySet()) {
            parts.put(e.getKey(), Part.read(e.getValue(), where + ": part " + Py.repr(e.getKey())));
        }
        TextInfo text = TextInfo.read(data.get("text"), where + ": text");
        VisionInfo vision = data.get("vision") == null ? null : VisionInfo.read(data.get("vision"), where + ": vision");
        TokenizerInfo tokenizer = TokenizerInfo.read(data.get("tokenizer"), where + ": tokenizer");
        Map<String, FileRecord> files = fileRecords(data, where);
        checkValues(data, text, vision, parts, files, where);
        return new Manifest(data, parts, text, vision, tokenizer, files, where);
    }

    /**
     * Python (manifest/upgrade.py) compares {@code version == 2} (an int or a float equal to 2 passes) and reads
     * version 1 too; the app reads version 2 only, and names it. A newer integer version: upgrade; anything else
     * (version 1, strings, missing): re-export.
     */
    private static void checkVersion(Object version, String where) {
        if (version instanceof Number && !(version instanceof Double && ((Double) version).isNaN())
                && ((Number) version).doubleValue() == SCHEMA_VERSION) {
            return;
        }
        String fix = (version instanceof Long && (Long) version > SCHEMA_VERSION)
                ? "upgrade edgevlm (pip install -U edgevlm) to read it"
                : "re-export the bundle with this edgevlm version (edgevlm export ...)";
        throw new BundleException(where + ": unknown manifest schema_version " + Py.repr(version) + "; this app reads version "
                + SCHEMA_VERSION + ". To fix: " + fix + ".");
    }

    private static Map<String, FileRecord> fileRecords(Map<String, Object> data, String where) {
        Map<String, FileRecord> out = new LinkedHashMap<>();
        Object files = data.get("files");
        if (files == null) {
            return out;
        }
        if (!(files instanceof Map)) {
            throw new BundleException(where + ": files is not a JSON object. Re-export the bundle.");
        }
        for (Map.Entry<String, Object> e : JsonMap.map(files, "files").entrySet()) {
            if (!(e.getValue() instanceof Map)) {
                throw new BundleException(where + ": the record of file " + Py.repr(e.getKey())
                        + " is not a JSON object. Re-export the bundle.");
            }
            Map<String, Object> record = JsonMap.map(e.getValue(), "files");
            out.put(e.getKey(), new FileRecord(record.get("sha256"), record.get("size")));
        }
        return out;
    }

    /** manifest/schema.py {@code check_values}, same order and messages. */
    private static void checkValues(Map<String, Object> data, TextInfo text, VisionInfo vision, Map<String, Part> parts,
                                    Map<String, FileRecord> files, String where) {
        Object format = data.get("format");
        if (!Arrays.asList(FORMATS).contains(format)) {
            throw new BundleException(where + ": format " + Py.repr(format) + " is not one of " + Py.reprTuple(FORMATS) + ".");
        }
        if (!(data.get("layout") instanceof Map)) {
            throw new BundleException(where + ": layout is not a JSON object. Re-export the bundle.");
        }
        Object attention = JsonMap.map(data.get("layout"), "layout").getOrDefault("attention", "causal");
        if (!Arrays.asList(ATTENTION_KINDS).contains(attention)) {
            throw new BundleException(where + ": layout.attention " + Py.repr(attention)
                    + " is not causal, prefix or image_blocks.");
        }
        TreeSet<String> unknownTypes = new TreeSet<>(text.layerTypes);
        unknownTypes.removeAll(Arrays.asList(LAYER_TYPES));
        if (!unknownTypes.isEmpty()) {
            throw new BundleException(where + ": text.layer_types names " + Py.repr(new ArrayList<Object>(unknownTypes))
                    + ", which this edgevlm does not run (it knows " + String.join(", ", LAYER_TYPES) + "). Upgrade edgevlm.");
        }
        if (vision != null && !Arrays.asList(VisionInfo.KINDS).contains(vision.kind)) {
            throw new BundleException(where + ": vision.kind " + Py.repr(vision.kind) + " is not one of "
                    + Py.reprTuple(VisionInfo.KINDS) + ". Upgrade edgevlm.");
        }
        for (Map.Entry<String, Part> e : parts.entrySet()) {
            Part part = e.getValue();
            if (!Arrays.asList(PART_FORMATS).contains(part.format)) {
                throw new BundleException(where + ": part " + Py.repr(e.getKey()) + " has format " + Py.repr(part.format)
                        + ", not one of " + Py.reprTuple(PART_FORMATS) + ".");
            }
            if (!files.containsKey(part.file)) {
                throw new BundleException(where + ": part " + Py.repr(e.getKey()) + " names file " + Py.repr(part.file)
                        + ", which the manifest's file list does not record. Re-export the bundle.");
            }
        }
    }

    /** (what, path) of every path the manifest names, in manifest/files.py {@code manifest_paths} order. */
    public List<String[]> paths() {
        List<String[]> out = new ArrayList<>();
        for (String rel : files.keySet()) {
            out.add(new String[] {"file", rel});
        }
        out.add(new String[] {"tokenizer file", tokenizer.file});
        for (Map.Entry<String, Part> e : parts.entrySet()) {
            out.add(new String[] {"part " + Py.repr(e.getKey()) + " file", e.getValue().file});
            for (String rel : e.getValue().dataFiles) {
                out.add(new String[] {"part " + Py.repr(e.getKey()) + " data file", rel});
            }
        }
        return out;
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

    /** The decoder part's graph-name binding, checked against the text model's layer count. */
    public DecoderBinding decoderBinding() {
        return DecoderBinding.of(part("decoder"), text);
    }
}
