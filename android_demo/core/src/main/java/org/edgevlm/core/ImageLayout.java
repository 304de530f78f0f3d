package org.edgevlm.core;

import java.util.Map;

/** How one image becomes placeholder text and how the model attends over it (processing/config.py ImageLayout). */
public final class ImageLayout {
    public final String featureToken;
    public final int tokensPerChunk;
    public final String imageIdTemplate; // "{index}" = the image's 0-based index; "" for none
    public final String overviewTemplate; // "{features}" = featureToken * tokensPerChunk
    public final String sliceTemplate;
    public final String slicesOpen;
    public final String slicesClose;
    public final String rowSeparator;
    public final String imageSuffix;
    public final String marker; // what users write for "an image goes here"
    public final String autoMarkerPosition; // "start" | "end"
    public final String autoMarkerJoiner;
    public final String afterLastImage;
    public final String attention; // "causal" | "prefix" | "image_blocks"
    public final String imagePrefix; // before an image's chunks, after its id
    public final boolean overviewLast; // the overview follows the tiles (text and features)

    private ImageLayout(Map<String, Object> m) {
        featureToken = JsonMap.getString(m, "feature_token", "<unk>");
        tokensPerChunk = JsonMap.getInt(m, "tokens_per_chunk", 64);
        imageIdTemplate = JsonMap.getString(m, "image_id_template", "");
        overviewTemplate = JsonMap.getString(m, "overview_template", "<image>{features}</image>");
        sliceTemplate = JsonMap.getString(m, "slice_template", "<slice>{features}</slice>");
        slicesOpen = JsonMap.getString(m, "slices_open", "");
        slicesClose = JsonMap.getString(m, "slices_close", "");
        rowSeparator = JsonMap.getString(m, "row_separator", "\n");
        imageSuffix = JsonMap.getString(m, "image_suffix", "");
        marker = JsonMap.getString(m, "marker", "(<image>./</image>)");
        autoMarkerPosition = JsonMap.getString(m, "auto_marker_position", "start");
        autoMarkerJoiner = JsonMap.getString(m, "auto_marker_joiner", "\n");
        afterLastImage = JsonMap.getString(m, "after_last_image", "");
        attention = JsonMap.getString(m, "attention", "causal");
        imagePrefix = JsonMap.getString(m, "image_prefix", "");
        overviewLast = JsonMap.getBool(m, "overview_last", false);
        if (!attention.equals("causal") && !attention.equals("prefix") && !attention.equals("image_blocks")) {
            throw new IllegalArgumentException("ImageLayout.attention must be causal/prefix/image_blocks, not " + Py.repr(attention));
        }
        if (!autoMarkerPosition.equals("start") && !autoMarkerPosition.equals("end")) {
            throw new IllegalArgumentException("ImageLayout.auto_marker_position must be 'start' or 'end'");
        }
    }

    public static ImageLayout fromMap(Map<String, Object> m) {
        ConfigKeys.check("ImageLayout", m, "feature_token", "tokens_per_chunk", "image_id_template", "overview_template",
                "slice_template", "slices_open", "slices_close", "row_separator", "image_suffix", "marker",
                "auto_marker_position", "auto_marker_joiner", "after_last_image", "attention", "image_prefix",
                "overview_last");
        return new ImageLayout(m);
    }
}
