package org.edgevlm.demo

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OnnxValue
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import org.edgevlm.core.BundleException
import org.edgevlm.core.Manifest
import org.edgevlm.core.PreparedImage
import org.edgevlm.core.VisionEncoder
import org.edgevlm.core.VisionInputs
import java.io.File
import java.nio.FloatBuffer
import java.nio.LongBuffer

/**
 * The core's [VisionEncoder] over the bundle's vision part (edgevlm/runtime/backends/onnxruntime.py encode_images).
 * Sliced images: chunks of the same patch grid run as one batch at their own length (no padding compute), with the
 * derived inputs the manifest names (navit position ids, resampler key positions) computed by the core.
 * Fixed-size images: pixel_values [1, 3, S, S].
 */
class OrtVision(
    private val env: OrtEnvironment,
    bundle: File,
    manifest: Manifest,
    options: OrtSession.SessionOptions,
) : VisionEncoder, AutoCloseable {
    private val session = OrtEngine.session(env, bundle, manifest, "vision", options)
    private val extra = manifest.part("vision").extra
    @Suppress("UNCHECKED_CAST")
    private val derived = (extra["derived_inputs"] as? Map<String, String>).orEmpty()
    private val maxBatch = ((manifest.vision["max_batch"] ?: extra["max_batch"]) as? Number)?.toInt()?.takeIf { it > 0 } ?: 16

    override fun encode(image: PreparedImage): Array<FloatArray> {
        if (!image.sliced()) {
            val s = image.imageSize.toLong()
            return run(mapOf("pixel_values" to tensor(image.chunks[0], longArrayOf(1, 3, s, s))))
        }
        val result = arrayOfNulls<Array<FloatArray>>(image.nChunks())
        val groups = (0 until image.nChunks()).groupBy { image.tgtSizes[it].toList() } // first-seen order
        for ((size, members) in groups) {
            val n = size[0] * size[1] // patches per chunk
            for (batch in members.chunked(maxBatch)) {
                val p = image.patchSize
                val pixels = FloatArray(batch.size * 3 * p * n * p)
                batch.forEachIndexed { j, i -> System.arraycopy(image.chunks[i], 0, pixels, j * 3 * p * n * p, 3 * p * n * p) }
                val tgt = Array(batch.size) { image.tgtSizes[batch[it]] }
                val feeds = LinkedHashMap<String, OnnxTensor>()
                feeds["pixel_values"] = tensor(pixels, longArrayOf(batch.size.toLong(), 3, p.toLong(), (n * p).toLong()))
                feeds["patch_attention_mask"] = OnnxTensor.createTensor(env, Array(batch.size) { BooleanArray(n) { true } })
                for ((name, kind) in derived) {
                    feeds[name] = when (kind) {
                        "navit_position_ids" -> OnnxTensor.createTensor(env,
                            LongBuffer.wrap(VisionInputs.navitPositionIds(tgt, n, intOf("patches_per_side"))),
                            longArrayOf(batch.size.toLong(), n.toLong()))
                        "resampler_key_pos" -> {
                            val dim = intOf("embed_dim")
                            tensor(VisionInputs.resamplerKeyPos(tgt, dim, n), longArrayOf(batch.size.toLong(), n.toLong(), dim.toLong()))
                        }
                        else -> throw BundleException("the vision part asks for derived input kind '$kind', which this app " +
                            "does not know. Update the app or re-export the bundle.")
                    }
                }
                val rows = run(feeds) // [b * tokens][hidden]
                val perChunk = rows.size / batch.size
                batch.forEachIndexed { j, i -> result[i] = rows.copyOfRange(j * perChunk, (j + 1) * perChunk) }
            }
        }
        return result.flatMap { it!!.asList() }.toTypedArray()
    }

    /** Runs the vision graph and returns its first output [b, tokens, hidden] as rows. */
    private fun run(feeds: Map<String, OnnxTensor>): Array<FloatArray> {
        try {
            session.run(feeds).use { result ->
                val out = result.get(0) as OnnxTensor
                val shape = out.info.shape
                val hidden = shape[shape.size - 1].toInt()
                val flat = out.floatBuffer
                return Array(flat.remaining() / hidden) { FloatArray(hidden).also { row -> flat.get(row) } }
            }
        } finally {
            feeds.values.forEach(OnnxValue::close)
        }
    }

    private fun tensor(values: FloatArray, shape: LongArray) = OnnxTensor.createTensor(env, FloatBuffer.wrap(values), shape)

    private fun intOf(key: String) = (extra[key] as? Number)?.toInt()
        ?: throw BundleException("the vision part lacks $key. Re-export the bundle.")

    override fun close() = session.close()
}
