package org.edgevlm.demo

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import org.edgevlm.core.BundleException
import org.edgevlm.core.BundleReader
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
 * edgevlm/runtime/backends/onnxruntime.py: everything model-specific comes from the manifest (schema 2): the
 * text model's shape and position offset from `text`, the image token id from `tokenizer`, and the decoder
 * part's `binding` (KV names, masks and their sliding windows, which mask each layer uses, logits index input),
 * read and checked by the core's [DecoderBinding].
 *
 * KV cache: one direct float buffer per layer and per key/value, [1, max_context, kv_heads, head_dim] (BSNH),
 * allocated once. Each step passes the rows a layer can still see, [first, n_past) (first > 0 only for a
 * sliding-window layer at long context), as zero-copy tensors over that buffer and copies the T new rows the
 * decoder returns (only the new tokens' keys/values) in place after them.
 */
class OrtEngine(
    private val env: OrtEnvironment,
    bundle: File,
    manifest: Manifest,
    options: OrtSession.SessionOptions,
) : InferenceEngine {
    // Checked before any session opens, so a bundle the app cannot run leaks nothing.
    private val text = manifest.text
    private val binding = manifest.decoderBinding()

    init {
        if (text.positionStreams != 1) {
            throw BundleException("this model takes ${text.positionStreams} position ids per token (M-RoPE); the app " +
                "feeds one. Use the Python runtime for this bundle.")
        }
    }

    private val embedding = session(env, bundle, manifest, "embedding", options)
    private val decoder = session(env, bundle, manifest, "decoder", options)
    private val maxContext = text.maxContext
    private val layers = text.numLayers
    private val kvHeads = text.numKvHeads
    private val headDim = text.headDim
    private val hidden = text.hiddenSize
    private val vocab = text.vocabSize
    private val imageTokenId: Long? = manifest.tokenizer.imageTokenId // null: a text-only bundle
    private val offset = text.positionOffset.toLong()
    private val row = kvHeads * headDim // floats per cached token per layer
    private val keys = Array(layers) { directFloats(maxContext * row) }
    private val values = Array(layers) { directFloats(maxContext * row) }
    private val blocks = IntArray(maxContext) { -1 } // block id of every cached row
    private var nPast = 0

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
            if (imageTokenId == null || ids[i] != imageTokenId) continue
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
            for ((name, window) in binding.masks) {
                val first = binding.firstVisibleKey(name, past) // keys [first, past + t)
                val bias = AttentionBias.build(blocks, past, t, window, binding.maskValue, first)
                inputs[name] = OnnxTensor.createTensor(env, FloatBuffer.wrap(bias),
                    longArrayOf(1, 1, t.toLong(), (past + t - first).toLong()))
            }
            inputs[binding.logitsIndex] = OnnxTensor.createTensor(env, LongBuffer.wrap(longArrayOf(t - 1L)), longArrayOf(1))
            for (layer in 0 until layers) {
                val first = binding.firstVisibleKey(binding.layerMasks[layer], past) // rows this layer can still see
                val pastShape = longArrayOf(1, (past - first).toLong(), kvHeads.toLong(), headDim.toLong())
                inputs[binding.kvName("past_key", layer)] = OnnxTensor.createTensor(env, rows(keys[layer], first, past - first), pastShape)
                inputs[binding.kvName("past_value", layer)] = OnnxTensor.createTensor(env, rows(values[layer], first, past - first), pastShape)
            }
            decoder.run(inputs).use { result ->
                for (layer in 0 until layers) {
                    copyRows(result, binding.kvName("present_key", layer), keys[layer], past, t)
                    copyRows(result, binding.kvName("present_value", layer), values[layer], past, t)
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

        fun session(env: OrtEnvironment, bundle: File, manifest: Manifest, part: String, options: OrtSession.SessionOptions): OrtSession {
            // inside the bundle (BundleReader refused any path leaving it; this checks again for this one)
            val file = BundleReader.inside(bundle.toPath(), manifest.part(part).file, "part '$part' file").toFile()
            if (!file.isFile) {
                throw BundleException("$file: the ONNX file of the $part part is missing. Re-copy or re-export the bundle.")
            }
            return env.createSession(file.path, options)
        }
    }
}
