package org.edgevlm.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Bundle reading against edgevlm/manifest (schema.py checks, files.py containment and verification) on valid and
 * damaged bundles (manifests.json): the same verdict and the same message; for valid bundles, every fact the app
 * reads equal to what Python read, from its schema-2 home.
 */
public final class ManifestGoldenTest {
    private final Map<String, Object> data;

    public ManifestGoldenTest(Golden golden) {
        data = golden.json("manifests.json");
    }

    public void testSameVerdictAndMessageAsPython() {
        int n = 0;
        int refused = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            String name = JsonMap.getString(c, "name", null);
            String dir = JsonMap.getString(c, "dir", null);
            if (JsonMap.getBool(c, "ok", false)) {
                checkFacts(name, c, BundleReader.read(dir, true));
            } else {
                BundleException ex = Check.raises(BundleException.class, () -> BundleReader.read(dir, true), name);
                Check.equal(c.get("error"), ex.kind(), name + " error kind");
                String expected = JsonMap.getString(c, "message", null);
                String actual = ex.getMessage();
                if ("prefix".equals(c.get("match"))) {
                    Check.isTrue(actual.startsWith(expected), name + ": " + Py.repr(actual) + " does not start with " + Py.repr(expected));
                } else {
                    Check.equal(expected, actual, name + " message");
                }
                refused++;
            }
            n++;
        }
        System.out.println("     manifests: " + n + " cases (" + refused + " refused), same verdict and message as Python");
        Check.isTrue(n >= 40 && refused >= 35, "expected the damaged-bundle cases");
    }

    private static void checkFacts(String name, Map<String, Object> c, Manifest m) {
        Check.equal(c.get("format"), m.format, name + " format");
        Check.equal(c.get("family"), m.family, name + " family");
        Check.equal(c.get("attention"), m.attention, name + " attention");
        Check.equal(c.get("attention"), m.layout.attention, name + " layout.attention");
        Check.equal(c.get("parts"), new ArrayList<Object>(new TreeSet<>(m.parts.keySet())), name + " parts");
        Check.equal(c.get("files"), new ArrayList<Object>(new TreeSet<>(m.files.keySet())), name + " files");
        Check.equal(c.get("max_context"), (long) m.text.maxContext, name + " max_context");

        Map<String, Object> text = JsonMap.getMap(c, "text");
        TextInfo t = m.text;
        Map<String, Object> textActual = new LinkedHashMap<>();
        textActual.put("arch", t.arch);
        textActual.put("hidden_size", (long) t.hiddenSize);
        textActual.put("num_layers", (long) t.numLayers);
        textActual.put("num_heads", (long) t.numHeads);
        textActual.put("num_kv_heads", (long) t.numKvHeads);
        textActual.put("head_dim", (long) t.headDim);
        textActual.put("vocab_size", (long) t.vocabSize);
        textActual.put("max_context", (long) t.maxContext);
        textActual.put("layer_types", new ArrayList<Object>(t.layerTypes));
        textActual.put("sliding_window", t.slidingWindow == null ? null : (long) t.slidingWindow);
        textActual.put("position_offset", (long) t.positionOffset);
        textActual.put("position_streams", (long) t.positionStreams);
        Check.equal(text, textActual, name + " text");

        Object vision = c.get("vision");
        Check.equal(vision == null, m.vision == null, name + " has a vision section");
        if (m.vision != null) {
            VisionInfo v = m.vision;
            Map<String, Object> visionActual = new LinkedHashMap<>();
            visionActual.put("kind", v.kind);
            visionActual.put("tokens_per_chunk", (long) v.tokensPerChunk);
            visionActual.put("hidden_size", (long) v.hiddenSize);
            visionActual.put("max_batch", (long) v.maxBatch);
            visionActual.put("patch_size", (long) v.patchSize);
            visionActual.put("image_size", v.imageSize == null ? null : (long) v.imageSize);
            visionActual.put("params", v.params);
            Check.equal(vision, visionActual, name + " vision");
        }

        Map<String, Object> tok = JsonMap.getMap(c, "tokenizer");
        Check.equal(tok.get("file"), m.tokenizer.file, name + " tokenizer file");
        Check.equal(tok.get("vocab_size"), (long) m.tokenizer.vocabSize, name + " tokenizer vocab_size");
        Check.equal(tok.get("eos_ids"), new ArrayList<Object>(m.tokenizer.eosIds), name + " eos_ids");
        Check.equal(tok.get("image_token_id"), m.tokenizer.imageTokenId, name + " image_token_id");

        Map<String, Object> partFacts = JsonMap.getMap(c, "part_facts");
        Check.equal(new ArrayList<>(partFacts.keySet()), new ArrayList<>(m.parts.keySet()), name + " part order");
        for (Map.Entry<String, Part> e : m.parts.entrySet()) {
            Map<String, Object> expected = JsonMap.map(partFacts.get(e.getKey()), "part");
            Part p = e.getValue();
            String where = name + " part " + e.getKey();
            Check.equal(expected.get("file"), p.file, where + " file");
            Check.equal(expected.get("format"), p.format, where + " format");
            Check.equal(expected.get("dtype"), p.dtype, where + " dtype");
            Check.equal(expected.get("data_files"), new ArrayList<Object>(p.dataFiles), where + " data_files");
            Check.equal(expected.get("binding"), p.binding, where + " binding");
            Check.equal(expected.get("runtime"), p.runtime, where + " runtime");
        }
        if (m.parts.containsKey("vision")) {
            Check.equal(JsonMap.getMap(JsonMap.getMap(partFacts, "vision"), "binding").get("derived_inputs"),
                    m.part("vision").derivedInputs(), name + " derived inputs");
            for (String kind : m.part("vision").derivedInputs().values()) {
                Check.isTrue(VisionInputs.KINDS.contains(kind), name + ": derived input kind " + kind + " unknown to the core");
            }
        }
        checkDecoderBinding(name, JsonMap.getMap(JsonMap.getMap(partFacts, "decoder"), "binding"), m);
    }

    /** The decoder binding as the app binds it (DecoderBinding) against the binding Python read. */
    private static void checkDecoderBinding(String name, Map<String, Object> binding, Manifest m) {
        DecoderBinding b = m.decoderBinding();
        Check.equal(binding.get("kv"), b.kv, name + " kv names");
        for (int layer = 0; layer < m.text.numLayers; layer++) {
            Check.equal("past_key." + layer, b.kvName("past_key", layer), name + " kv name of layer " + layer);
        }
        Map<String, Object> masks = JsonMap.getMap(binding, "masks");
        Check.equal(new ArrayList<>(masks.keySet()), new ArrayList<>(b.masks.keySet()), name + " masks");
        for (Map.Entry<String, Integer> e : b.masks.entrySet()) {
            Object window = masks.get(e.getKey());
            Check.equal(window, e.getValue() == null ? null : (long) e.getValue(), name + " window of " + e.getKey());
        }
        List<Object> layerMasks = JsonMap.getList(binding, "layer_masks");
        Check.equal(layerMasks.isEmpty() ? new ArrayList<>(java.util.Collections.nCopies(m.text.numLayers, null))
                : layerMasks, new ArrayList<Object>(b.layerMasks), name + " layer masks");
        Check.equal(binding.getOrDefault("logits_index", "logits_index"), b.logitsIndex, name + " logits index input");
        Object maskValue = binding.get("mask_value");
        Check.isTrue(b.maskValue == (maskValue == null ? -Float.MAX_VALUE : (float) JsonMap.asDouble(maskValue, "mask_value")),
                name + " mask value " + b.maskValue);
        for (String mask : b.masks.keySet()) {
            Integer window = b.masks.get(mask);
            boolean bound = b.layerMasks.contains(mask);
            // ort_masks.first_visible_key at a long context: a windowed mask some layer uses starts late, others at 0
            int expected = window != null && bound ? Math.max(0, 1000 - window + 1) : 0;
            Check.equal(expected, b.firstVisibleKey(mask, 1000), name + " first visible key of " + mask);
        }
        Check.equal(0, b.firstVisibleKey(null, 1000), name + " first visible key of an unmasked layer");
        Check.isTrue(Arrays.asList("causal", "prefix", "image_blocks").contains(m.layout.attention), name + " attention kind");
    }
}
