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
 * The core's [VisionEncoder] over the bundle's vision part (edgevlm/runtime/backends/ort_vision.py encode_chunks),
 * fed as the manifest's `vision.kind` says:
 *  - "image": pixel_values [b, 3, S, S], chunks in batches of `vision.max_batch`;
 *  - "patch_sequence": chunks of the same patch grid run as one batch at their own length (no padding compute),
 *    with the derived inputs the vision part's `binding.derived_inputs` names, computed by the core
 *    ([VisionInputs.compute], parameters from `vision.params`).
 */
class OrtVision(
    private val env: OrtEnvironment,
    bundle: File,
    manifest: Manifest,
    options: OrtSession.SessionOptions,
) : VisionEncoder, AutoCloseable {
    private val vision = manifest.vision
        ?: throw BundleException("the manifest has a vision part but no vision section. Re-export the bundle.")
    private val derived = manifest.part("vision").derivedInputs() // graph input name -> kind
    private val maxBatch = maxOf(1, vision.maxBatch)

    init { // before the session opens, so a bundle the app cannot run leaks nothing
        if (vision.kind != "image" && vision.kind != "patch_sequence") {
            throw BundleException("the vision part takes '${vision.kind}' inputs, which this app does not know. Update the app.")
        }
    }

    private val session = OrtEngine.session(env, bundle, manifest, "vision", options)

    override fun encode(image: PreparedImage): Array<FloatArray> {
        if (vision.kind == "image") {
            if (image.sliced()) {
                throw BundleException("the vision part takes fixed-size images but the processor made patch sequences; " +
                    "the bundle's processor and vision sections disagree. Re-export the bundle.")
            }
            val s = image.imageSize.toLong()
            val rows = ArrayList<FloatArray>()
            for (batch in (0 until image.nChunks()).chunked(maxBatch)) {
                val pixels = FloatArray(batch.size * image.chunks[0].size)
                batch.forEachIndexed { j, i -> System.arraycopy(image.chunks[i], 0, pixels, j * image.chunks[i].size, image.chunks[i].size) }
                rows.addAll(run(mapOf("pixel_values" to tensor(pixels, longArrayOf(batch.size.toLong(), 3, s, s)))))
            }
            return rows.toTypedArray()
        }
        if (!image.sliced()) {
            throw BundleException("the vision part takes patch sequences but the processor made fixed-size images; " +
                "the bundle's processor and vision sections disagree. Re-export the bundle.")
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
                    val input = VisionInputs.compute(kind, tgt, n, vision.params)
                    feeds[name] = if (input.int64 != null) {
                        OnnxTensor.createTensor(env, LongBuffer.wrap(input.int64), input.shape)
                    } else {
                        tensor(input.float32, input.shape)
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

    override fun close() = session.close()
}
