package org.edgevlm.core;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** The text decoder's shape, the manifest's {@code text} section (manifest/schema.py TextInfo): caches, positions, masks. */
public final class TextInfo {
    static final List<String> REQUIRED = Arrays.asList("arch", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
            "head_dim", "vocab_size", "max_context");
    static final List<String> OPTIONAL = Arrays.asList("layer_types", "sliding_window", "position_offset",
            "position_streams", "details");

    public final String arch; // llama.cpp / onnxruntime-genai architecture name
    public final int hiddenSize;
    public final int numLayers;
    public final int numHeads;
    public final int numKvHeads;
    public final int headDim;
    public final int vocabSize; // rows of the output head (>= the tokenizer's when the table was padded)
    public final int maxContext; // cache capacity in tokens, allocated once per session
    public final List<String> layerTypes; // per layer; empty = all full attention
    public final Integer slidingWindow; // null: none
    public final int positionOffset; // added to every position id
    public final int positionStreams; // position ids per token: 1 (RoPE), 3 (M-RoPE)
    public final Map<String, Object> details; // informational

    private TextInfo(Section s) {
        arch = s.string("arch", null);
        hiddenSize = s.integer("hidden_size", 0);
        numLayers = s.integer("num_layers", 0);
        numHeads = s.integer("num_heads", 0);
        numKvHeads = s.integer("num_kv_heads", 0);
        headDim = s.integer("head_dim", 0);
        vocabSize = s.integer("vocab_size", 0);
        maxContext = s.integer("max_context", 0);
        layerTypes = Collections.unmodifiableList(s.strings("layer_types", false));
        slidingWindow = s.nullableInteger("sliding_window");
        positionOffset = s.integer("position_offset", 0);
        positionStreams = s.integer("position_streams", 1);
        details = Collections.unmodifiableMap(s.map("details"));
    }

    static TextInfo read(Object json, String where) {
        return new TextInfo(Section.read(json, "TextInfo", where, REQUIRED, OPTIONAL));
    }
}
