package org.edgevlm.demo

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import org.edgevlm.core.BundleException
import org.edgevlm.core.InferenceEngine
import org.edgevlm.core.Manifest
import org.edgevlm.core.PromptException
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.FloatBuffer
import java.nio.LongBuffer

/**
 * The core's [InferenceEngine] over the bundle's ONNX embedding + decoder parts, following
 * edgevlm/runtime/backends/onnxruntime.py: everything model-specific comes from the decoder part's manifest
 * entry (KV names and shape, masks and their sliding windows, position offset, logits index input).
 *
 * KV cache: one direct float buffer per layer and per key/value, [1, max_context, kv_heads, head_dim] (BSNH),
 * allocated once. Each step passes rows [0, n_past) as zero-copy tensors over that buffer and copies the
 * T new rows the decoder returns ("kv_outputs": "new_tokens_only") in place after them.
 */
class OrtEngine(
    private val env: OrtEnvironment,
    bundle: File,
    manifest: Manifest,
    options: OrtSession.SessionOptions,
) : InferenceEngine {
    private val embedding = session(env, bundle, manifest, "embedding", options)
    private val decoder = session(env, bundle, manifest, "decoder", options)
    private val dec = manifest.part("decoder")
    private val maxContext = intOf(dec.extra, "max_context")
    private val layers = intOf(dec.extra, "num_layers")
    private val kvHeads = intOf(dec.extra, "num_kv_heads")
    private val headDim = intOf(dec.extra, "head_dim")
    private val hidden = intOf(dec.extra, "hidden_size")
    private val vocab = intOf(dec.extra, "vocab_size")
    private val imageTokenId = (manifest.part("embedding").extra["image_token_id"] as Number).toLong()
    private val offset = (dec.extra["position_offset"] as? Number)?.toLong() ?: 0L
    private val maskValue = (dec.extra["mask_value"] as? Number)?.toFloat() ?: -Float.MAX_VALUE
    private val logitsInput = dec.extra["logits_index_input"] as? String ?: "logits_index"
    @Suppress("UNCHECKED_CAST")
    private val masks: Map<String, Int?> = (dec.extra["masks"] as Map<String, Any?>).mapValues { (it.value as? Number)?.toInt() }
    private val row = kvHeads * headDim // floats per cached token per layer
    private val keys = Array(layers) { directFloats(maxContext * row) }
    private val values = Array(layers) { directFloats(maxContext * row) }
    private val blocks = IntArray(maxContext) { -1 } // block id of every cached row
    private var nPast = 0

    init {
        if (dec.extra["kv_layout"] != "BSNH" || dec.extra["kv_outputs"] != "new_tokens_only") {
            throw BundleException("this decoder keeps its KV cache as ${dec.extra["kv_layout"]}/${dec.extra["kv_outputs"]}; " +
                "the app supports BSNH with new_tokens_only outputs. Re-export the bundle with this edgevlm version.")
        }
    }

    override fun maxContext() = maxContext

    override fun nPast() = nPast

    override fun forward(ids: LongArray, features: Array<FloatArray>?, blockIds: IntArray?): FloatArray {
        val t = ids.size
        val past = nPast
        if (t == 0) throw PromptException("forward() got no tokens; pass at least one token id.")
        if (past + t > maxContext) {
            throw PromptException("${past + t} tokens do not fit the KV cache of $maxContext tokens. Shorten the " +
                "prompt or conversation, or re-export with a larger --max-context.")
        }
        val embeds = embed(ids) // [T * hidden]
        var r = 0
        for (i in 0 until t) {
            if (ids[i] != imageTokenId) continue
            val rows = features ?: throw PromptException("image placeholder tokens but no image features were given")
            if (r >= rows.size) throw PromptException("more image placeholder tokens than image feature rows")
            System.arraycopy(rows[r++], 0, embeds, i * hidden, hidden)
        }
        if (features != null && r != features.size) {
            throw PromptException("$r image placeholder tokens but ${features.size} image feature rows; the prompt's " +
                "image places do not match the images given.")
        }
        for (i in 0 until t) blocks[past + i] = blockIds?.get(i) ?: -1

        val inputs = LinkedHashMap<String, OnnxTensor>()
        try {
            inputs["inputs_embeds"] = OnnxTensor.createTensor(env, FloatBuffer.wrap(embeds), longArrayOf(1, t.toLong(), hidden.toLong()))
            inputs["position_ids"] = OnnxTensor.createTensor(env, LongBuffer.wrap(LongArray(t) { past + it + offset }), longArrayOf(1, t.toLong()))
            for ((name, window) in masks) {
                val bias = AttentionBias.build(blocks, past, t, window, maskValue)
                inputs[name] = OnnxTensor.createTensor(env, FloatBuffer.wrap(bias), longArrayOf(1, 1, t.toLong(), (past + t).toLong()))
            }
            inputs[logitsInput] = OnnxTensor.createTensor(env, LongBuffer.wrap(longArrayOf(t - 1L)), longArrayOf(1))
            val pastShape = longArrayOf(1, past.toLong(), kvHeads.toLong(), headDim.toLong())
            for (layer in 0 until layers) {
                inputs[dec.kvName("past_key", layer)] = OnnxTensor.createTensor(env, rows(keys[layer], 0, past), pastShape)
                inputs[dec.kvName("past_value", layer)] = OnnxTensor.createTensor(env, rows(values[layer], 0, past), pastShape)
            }
            decoder.run(inputs).use { result ->
                for (layer in 0 until layers) {
                    copyRows(result, dec.kvName("present_key", layer), keys[layer], past, t)
                    copyRows(result, dec.kvName("present_value", layer), values[layer], past, t)
                }
                val logits = (result.get("logits").get() as OnnxTensor).floatBuffer // [1, 1, vocab]
                nPast = past + t
                return FloatArray(vocab).also { logits.get(it) }
            }
        } finally {
            inputs.values.forEach { it.close() }
        }
    }

    override fun rewind(nKeep: Int) {
        require(nKeep in 0..nPast) { "rewind($nKeep) outside [0, $nPast]" }
        nPast = nKeep // rows from nKeep on are overwritten by the next forward
        for (i in nKeep until maxContext) blocks[i] = -1
    }

    override fun close() {
        embedding.close()
        decoder.close()
    }

    /** int64 ids [T] -> float32 embeddings [T * hidden]. */
    private fun embed(ids: LongArray): FloatArray {
        OnnxTensor.createTensor(env, LongBuffer.wrap(ids), longArrayOf(1, ids.size.toLong())).use { input ->
            embedding.run(mapOf("input_ids" to input)).use { result ->
                val out = (result.get(0) as OnnxTensor).floatBuffer
                return FloatArray(ids.size * hidden).also { out.get(it) }
            }
        }
    }

    /** A zero-copy view of cache rows [from, from + count). */
    private fun rows(buffer: FloatBuffer, from: Int, count: Int): FloatBuffer {
        val view = buffer.duplicate()
        view.position(from * row)
        view.limit((from + count) * row)
        return view.slice()
    }

    private fun copyRows(result: OrtSession.Result, name: String, buffer: FloatBuffer, at: Int, count: Int) {
        val present = (result.get(name).get() as OnnxTensor).floatBuffer // [1, T, kv_heads, head_dim]
        val target = buffer.duplicate()
        target.position(at * row)
        target.limit((at + count) * row)
        target.put(present)
    }

    companion object {
        fun directFloats(n: Int): FloatBuffer =
            ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer()

        fun intOf(extra: Map<String, Any?>, key: String): Int =
            (extra[key] as? Number)?.toInt() ?: throw BundleException("the decoder part lacks $key. Re-export the bundle.")

        fun session(env: OrtEnvironment, bundle: File, manifest: Manifest, part: String, options: OrtSession.SessionOptions): OrtSession {
            val file = File(bundle, manifest.part(part).file)
            if (!file.isFile) {
                throw BundleException("$file: the ONNX file of the $part part is missing. Re-copy or re-export the bundle.")
            }
            return env.createSession(file.path, options)
        }
    }
}
