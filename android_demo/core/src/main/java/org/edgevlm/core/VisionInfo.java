package org.edgevlm.core;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** How the vision part makes image features and how it is fed: the manifest's {@code vision} section (manifest/schema.py VisionInfo). */
public final class VisionInfo {
    public static final String[] KINDS = {"image", "patch_sequence", "packed_patches"};
    static final List<String> REQUIRED = Arrays.asList("kind", "tokens_per_chunk", "hidden_size");
    static final List<String> OPTIONAL = Arrays.asList("max_batch", "patch_size", "image_size", "params");

    /** "image": fixed-size pixels [B, 3, S, S]; "patch_sequence": chunks as padded patch rows + mask + derived inputs;
     * "packed_patches": native-resolution patch rows of images of one grid + that grid's derived inputs. */
    public final String kind;
    public final int tokensPerChunk; // feature rows per chunk
    public final int hiddenSize; // width of a feature row
    public final int maxBatch; // chunks per vision run
    public final int patchSize;
    public final Integer imageSize; // "image": the side the part takes
    public final Map<String, Object> params; // parameters of the derived inputs (VisionInputs.compute)

    private VisionInfo(Section s) {
        kind = s.string("kind", null);
        tokensPerChunk = s.integer("tokens_per_chunk", 0);
        hiddenSize = s.integer("hidden_size", 0);
        maxBatch = s.integer("max_batch", 16);
        patchSize = s.integer("patch_size", 14);
        imageSize = s.nullableInteger("image_size");
        params = Collections.unmodifiableMap(s.map("params"));
    }

    static VisionInfo read(Object json, String where) {
        return new VisionInfo(Section.read(json, "VisionInfo", where, REQUIRED, OPTIONAL));
    }
}
