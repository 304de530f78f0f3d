package org.edgevlm.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How the decoder part's graph names bind, read once from its manifest {@code binding} as
 * runtime/backends/onnxruntime.py reads it: KV tensor names per layer, the attention-mask inputs with their
 * sliding windows, which mask each layer uses, the masked-out value and the logits-index input.
 */
public final class DecoderBinding {
    static final List<String> KV_KINDS = Arrays.asList("past_key", "past_value", "present_key", "present_value");

    public final Map<String, String> kv; // KV_KINDS -> name template with %d for the layer, e.g. "past_key.%d"
    public final Map<String, Integer> masks; // mask input -> sliding window (null: full attention)
    /** Per layer, the mask input its attention uses; all null for bundles that do not say (every layer bound in full). */
    public final List<String> layerMasks;
    public final float maskValue; // added where attention is not allowed
    public final String logitsIndex; // input naming the positions whose logits are computed
    private final Map<String, Integer> windowed; // masks some layer uses, with a window: those layers bind fewer rows

    private DecoderBinding(Map<String, String> kv, Map<String, Integer> masks, List<String> layerMasks, float maskValue,
                           String logitsIndex) {
        this.kv = Collections.unmodifiableMap(kv);
        this.masks = Collections.unmodifiableMap(masks);
        this.layerMasks = Collections.unmodifiableList(layerMasks);
        this.maskValue = maskValue;
        this.logitsIndex = logitsIndex;
        Map<String, Integer> w = new LinkedHashMap<>();
        for (Map.Entry<String, Integer> e : masks.entrySet()) {
            if (e.getValue() != null && layerMasks.contains(e.getKey())) {
                w.put(e.getKey(), e.getValue());
            }
        }
        this.windowed = w;
    }

    private static BundleException bad(String what) {
        return new BundleException("the decoder part's binding " + what + ". Re-export the bundle with this edgevlm version.");
    }

    /** Reads and checks {@code decoder.binding} for a text model of {@code text.numLayers} layers. */
    public static DecoderBinding of(Part decoder, TextInfo text) {
        Map<String, Object> b = decoder.binding;
        if (text.layerTypes.contains("linear_attention")) {
            // a hybrid model's recurrent layers keep conv + recurrent states (binding "states"), which this core's
            // KV-only engine does not carry yet (runtime/backends/ort_states.py is the Python side)
            throw new BundleException("this bundle's text model has recurrent (linear-attention) layers, which this app's "
                    + "engine does not run yet (it keeps KV caches only). Use the Python runtime, or a model without them.");
        }
        if (!(b.get("kv") instanceof Map)) {
            throw bad("has no kv names");
        }
        Map<String, String> kv = new LinkedHashMap<>();
        for (String kind : KV_KINDS) {
            Object template = JsonMap.map(b.get("kv"), "kv").get(kind);
            if (!(template instanceof String)) {
                throw bad("has no KV name for " + Py.repr(kind));
            }
            kv.put(kind, (String) template);
        }
        if (!(b.get("masks") instanceof Map)) {
            throw bad("has no masks");
        }
        Map<String, Integer> masks = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : JsonMap.map(b.get("masks"), "masks").entrySet()) {
            Object window = e.getValue();
            if (window != null && !(window instanceof Long)) {
                throw bad("gives mask " + Py.repr(e.getKey()) + " the window " + Py.repr(window) + ", not an integer or null");
            }
            masks.put(e.getKey(), window == null ? null : (int) (long) (Long) window);
        }
        List<String> layerMasks = new ArrayList<>(Collections.nCopies(text.numLayers, (String) null));
        Object perLayer = b.get("layer_masks");
        if (perLayer instanceof List && !((List<?>) perLayer).isEmpty()) {
            List<Object> items = JsonMap.list(perLayer, "layer_masks");
            if (items.size() != text.numLayers) {
                throw bad("names masks for " + items.size() + " layers, the text model has " + text.numLayers);
            }
            for (int i = 0; i < items.size(); i++) {
                if (items.get(i) != null && !masks.containsKey(items.get(i))) {
                    throw bad("gives layer " + i + " the mask " + Py.repr(items.get(i)) + ", which is not among its masks "
                            + masks.keySet());
                }
                layerMasks.set(i, (String) items.get(i));
            }
        } else if (perLayer != null && !(perLayer instanceof List)) {
            throw bad("has layer_masks " + Py.repr(perLayer) + ", not a list");
        }
        Object value = b.get("mask_value");
        if (value != null && !(value instanceof Number)) {
            throw bad("has mask_value " + Py.repr(value) + ", not a number");
        }
        float maskValue = value == null ? -Float.MAX_VALUE : ((Number) value).floatValue();
        Object logits = b.containsKey("logits_index") ? b.get("logits_index") : "logits_index";
        if (!(logits instanceof String)) {
            throw bad("has logits_index " + Py.repr(logits) + ", not a string");
        }
        return new DecoderBinding(kv, masks, layerMasks, maskValue, (String) logits);
    }

    /** The KV tensor name of one layer, e.g. kvName("past_key", 3) = "past_key.3". */
    public String kvName(String kind, int layer) {
        String template = kv.get(kind);
        if (template == null) {
            throw bad("has no KV name for " + Py.repr(kind));
        }
        return template.replace("%d", Integer.toString(layer));
    }

    /**
     * The first cache row a query at row >= {@code start} may see through {@code mask} (ort_masks.first_visible_key):
     * a layer whose mask has a sliding window is bound only rows from here on; other masks and layers see row 0 on.
     */
    public int firstVisibleKey(String mask, int start) {
        Integer window = mask == null ? null : windowed.get(mask);
        return window == null ? 0 : Math.max(0, start - window + 1);
    }
}
