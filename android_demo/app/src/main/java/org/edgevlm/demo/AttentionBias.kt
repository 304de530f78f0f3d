package org.edgevlm.demo

/**
 * Additive attention masks for the ONNX decoder, as edgevlm/runtime/backends/ort_masks.py builds them:
 * allowed(q, k) = (k <= q or (block[q] == block[k] and block[q] >= 0)) and (window == null or q - k < window).
 */
object AttentionBias {
    /**
     * float32 [1, 1, length, start + length - firstKey] for queries at cache rows [start, start + length) over keys
     * [firstKey, start + length): a sliding-window layer is bound only the rows its window can still see.
     */
    fun build(blocks: IntArray, start: Int, length: Int, window: Int?, maskValue: Float, firstKey: Int = 0): FloatArray {
        val total = start + length
        val width = total - firstKey
        val out = FloatArray(length * width)
        for (t in 0 until length) {
            val q = start + t
            val qb = blocks[q]
            for (k in firstKey until total) {
                var allowed = k <= q || (qb >= 0 && blocks[k] == qb)
                if (window != null && q - k >= window) allowed = false
                out[t * width + k - firstKey] = if (allowed) 0f else maskValue
            }
        }
        return out
    }
}
