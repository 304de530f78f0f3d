package org.edgevlm.core;

import java.util.List;
import java.util.Map;

/** How pixels become vision-tower input: edgevlm/processing/config.py ProcessorConfig, same defaults. */
public final class ProcessorConfig {
    public final String kind; // an algorithm: "slice" (LLaVA-UHD overview + slices) | "fixed" (one square resize) | ...
    public final Map<String, Object> options; // settings only that kind reads
    public final int imageSize;
    public final int patchSize;
    public final double[] mean;
    public final double[] std;
    public final String resample; // Pillow filter name
    public final double rescaleFactor;
    public final int maxSliceNums;
    public final int scaleResolution;
    public final boolean neverSplit;
    public final Integer resizeAlign; // null: patchSize
    public final Long maxPixels; // null: no limit

    public ProcessorConfig(String kind, int imageSize, int patchSize, double[] mean, double[] std, String resample,
                           double rescaleFactor, int maxSliceNums, int scaleResolution, boolean neverSplit,
                           Integer resizeAlign, Long maxPixels, Map<String, Object> options) {
        if (kind.isEmpty()) {
            throw new IllegalArgumentException("ProcessorConfig.kind must name a processor kind, not " + Py.repr(kind));
        }
        this.kind = kind;
        this.options = options;
        this.imageSize = imageSize;
        this.patchSize = patchSize;
        this.mean = mean.clone();
        this.std = std.clone();
        this.resample = resample;
        this.rescaleFactor = rescaleFactor;
        this.maxSliceNums = maxSliceNums;
        this.scaleResolution = scaleResolution;
        this.neverSplit = neverSplit;
        this.resizeAlign = resizeAlign;
        this.maxPixels = maxPixels;
    }

    /** The Python defaults (MiniCPM-V slicing). */
    public static ProcessorConfig defaults() {
        return fromMap(java.util.Collections.<String, Object>emptyMap());
    }

    public static ProcessorConfig fromMap(Map<String, Object> m) {
        ConfigKeys.check("ProcessorConfig", m, "kind", "image_size", "patch_size", "mean", "std", "resample",
                "rescale_factor", "max_slice_nums", "scale_resolution", "never_split", "resize_align", "max_pixels",
                "options");
        return new ProcessorConfig(
                JsonMap.getString(m, "kind", "slice"),
                JsonMap.getInt(m, "image_size", 448),
                JsonMap.getInt(m, "patch_size", 14),
                triple(m, "mean"),
                triple(m, "std"),
                JsonMap.getString(m, "resample", "bicubic"),
                JsonMap.getDouble(m, "rescale_factor", 1.0 / 255),
                JsonMap.getInt(m, "max_slice_nums", 9),
                JsonMap.getInt(m, "scale_resolution", 448),
                JsonMap.getBool(m, "never_split", false),
                m.get("resize_align") == null ? null : (int) JsonMap.asLong(m.get("resize_align"), "resize_align"),
                m.containsKey("max_pixels") ? (m.get("max_pixels") == null ? null : JsonMap.asLong(m.get("max_pixels"), "max_pixels"))
                        : 128_000_000L,
                m.containsKey("options") ? JsonMap.map(m.get("options"), "options")
                        : java.util.Collections.<String, Object>emptyMap());
    }

    private static double[] triple(Map<String, Object> m, String key) {
        if (!m.containsKey(key)) {
            return new double[] {0.5, 0.5, 0.5};
        }
        List<Object> items = JsonMap.list(m.get(key), key);
        if (items.size() != 3) {
            throw new IllegalArgumentException("ProcessorConfig." + key + " needs 3 values, one per channel");
        }
        return new double[] {JsonMap.asDouble(items.get(0), key), JsonMap.asDouble(items.get(1), key),
                JsonMap.asDouble(items.get(2), key)};
    }

    /** The alignment of slice sizes (the reference aligns to its patch_size argument). */
    public int align() {
        return resizeAlign != null && resizeAlign != 0 ? resizeAlign : patchSize;
    }
}
