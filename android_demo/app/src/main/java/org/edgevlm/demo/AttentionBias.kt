package org.edgevlm.demo

/**
 * Additive attention masks for the ONNX decoder, as edgevlm/runtime/backends/ort_masks.py builds them:
 * allowed(q, k) = (k <= q or (block[q] == block[k] and block[q] >= 0)) and (window == null or q - k < window).
 */
object AttentionBias {
    /** float32 [1, 1, length, start + length] for queries at cache rows [start, start + length). */
    fun build(blocks: IntArray, start: Int, length: Int, window: Int?, maskValue: Float): FloatArray {
        val total = start + length
        val out = FloatArray(length * total)
        for (t in 0 until length) {
            val q = start + t
            val qb = blocks[q]
            for (k in 0 until total) {
                var allowed = k <= q || (qb >= 0 && blocks[k] == qb)
                if (window != null && q - k >= window) allowed = false
                out[t * total + k] = if (allowed) 0f else maskValue
            }
        }
        return out
    }
}
