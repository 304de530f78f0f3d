package org.edgevlm.demo

import android.Manifest as AndroidManifest
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import android.widget.ArrayAdapter
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.ContextCompat
import androidx.core.content.FileProvider
import androidx.lifecycle.lifecycleScope
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.edgevlm.core.BundleReader
import org.edgevlm.core.EdgeVlmException
import org.edgevlm.core.GenerationOptions
import org.edgevlm.core.Generator
import org.edgevlm.core.Manifest
import org.edgevlm.core.RgbImage
import org.edgevlm.core.VisionEncoder
import org.edgevlm.demo.databinding.ActivityMainBinding
import java.io.File
import java.util.concurrent.Executors

/**
 * Pick or shoot a photo, ask a question, watch the answer stream in, with time to first token split into
 * slicing / vision / prefill and the decode speed. All model work runs on one background thread (the ONNX
 * sessions and the KV cache are not shared between threads).
 */
class MainActivity : AppCompatActivity() {
    private lateinit var ui: ActivityMainBinding
    private val executor = Executors.newSingleThreadExecutor()
    private val worker = executor.asCoroutineDispatcher()
    private val env: OrtEnvironment by lazy { OrtEnvironment.getEnvironment() }

    private var manifest: Manifest? = null
    private var engine: OrtEngine? = null
    private var vision: OrtVision? = null
    private var tokenizer: HfTokenizer? = null
    private var generator: Generator? = null // one conversation; a new picture starts a new one
    private var image: RgbImage? = null
    private var photoUri: Uri? = null

    private val pickImage = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) useImage(uri)
    }
    private val takePhoto = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        photoUri?.takeIf { saved }?.let(::useImage)
    }
    private val cameraPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) launchCamera() else status("Camera permission denied: pick a picture from the gallery instead.")
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        ui = ActivityMainBinding.inflate(layoutInflater)
        setContentView(ui.root)
        ui.providerSpinner.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item,
            ExecutionChoice.values().map { it.label })
        ui.loadButton.setOnClickListener { loadBundle(ExecutionChoice.values()[ui.providerSpinner.selectedItemPosition]) }
        ui.galleryButton.setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        ui.cameraButton.setOnClickListener {
            if (ContextCompat.checkSelfPermission(this, AndroidManifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
                launchCamera()
            } else {
                cameraPermission.launch(AndroidManifest.permission.CAMERA)
            }
        }
        ui.askButton.setOnClickListener { ask(ui.promptInput.text.toString()) }
    }

    private fun status(text: String) {
        ui.statusText.text = text
    }

    private fun launchCamera() {
        val file = File(cacheDir, "photos/capture.jpg").apply { parentFile?.mkdirs() }
        val uri = FileProvider.getUriForFile(this, "$packageName.fileprovider", file)
        photoUri = uri
        takePhoto.launch(uri)
    }

    private fun loadBundle(choice: ExecutionChoice) {
        ui.askButton.isEnabled = false
        lifecycleScope.launch {
            status("Looking for a bundle…")
            val message = withContext(worker) {
                try {
                    closeModel()
                    val dir = BundleLocator.find(this@MainActivity)
                        ?: return@withContext "No bundle found. Looked in:\n" +
                            BundleLocator.candidates(this@MainActivity).joinToString("\n") + "\nPush one with adb (README)."
                    val m = BundleReader.read(dir.path, true) // sizes + sha256 of every file, like the Python runtime
                    val options = OrtSession.SessionOptions()
                    Providers.configure(options, choice, Runtime.getRuntime().availableProcessors().coerceAtMost(4))
                    engine = OrtEngine(env, dir, m, options)
                    vision = if ("vision" in m.parts) OrtVision(env, dir, m, options) else null
                    tokenizer = HfTokenizer(BundleReader.inside(dir.toPath(), m.tokenizer.file, "tokenizer file").toFile())
                    manifest = m
                    "Loaded ${m.source["checkpoint"] ?: dir.name} (${m.format}, ${m.part("decoder").dtype}) on ${choice.label}, " +
                        "context ${engine!!.maxContext()} tokens."
                } catch (e: ProviderUnavailable) {
                    e.message!!
                } catch (e: EdgeVlmException) {
                    e.message!!
                } catch (e: Exception) {
                    "Could not load the bundle: $e"
                }
            }
            status(message)
            ui.askButton.isEnabled = manifest != null
        }
    }

    private fun useImage(uri: Uri) {
        ui.preview.setImageURI(uri)
        lifecycleScope.launch {
            val result = withContext(worker) {
                try {
                    image = ImageLoader.load(contentResolver, uri, manifest?.processor?.maxPixels)
                    generator = null // a new picture starts a new conversation
                    null
                } catch (e: EdgeVlmException) {
                    e.message
                }
            }
            result?.let(::status)
        }
    }

    private fun ask(question: String) {
        val m = manifest ?: return status("Load a bundle first.")
        ui.askButton.isEnabled = false
        ui.answerText.text = ""
        ui.statsText.text = ""
        lifecycleScope.launch {
            val stats = withContext(worker) {
                try {
                    val tok = tokenizer!!
                    val chat = generator ?: Generator(m, engine!!, vision ?: noVision(), tok, null).also { generator = it }
                    // The picture goes with the first question of a conversation only (it stays in the KV cache).
                    val images = if (chat.turns() == 0) listOfNotNull(image) else emptyList()
                    val decoder = StreamDecoder(tok)
                    val result = chat.send(question, images, GenerationOptions()) { id ->
                        val delta = decoder.push(id)
                        if (delta.isNotEmpty()) runOnUiThread { ui.answerText.append(delta) }
                    }
                    val tail = decoder.flush()
                    if (tail.isNotEmpty()) runOnUiThread { ui.answerText.append(tail) }
                    val s = result.stats
                    "time to first token %.0f ms = slicing %.0f + vision %.0f + prefill %.0f (%d tokens, %.0f tok/s)\n".format(
                        s.timeToFirstTokenMs, s.slicingMs, s.visionMs, s.prefillMs, s.promptTokens, s.prefillTokensPerS) +
                        "decode %d tokens at %.1f tok/s (%s)".format(s.decodeTokens, s.decodeTokensPerS, result.finishReason)
                } catch (e: EdgeVlmException) {
                    e.message
                } catch (e: Exception) {
                    "Generation failed: $e"
                }
            }
            ui.statsText.text = stats
            ui.askButton.isEnabled = true
        }
    }

    private fun noVision() = VisionEncoder {
        throw EdgeVlmException("this bundle has no vision part, so it cannot take images; ask without a picture")
    }

    private fun closeModel() {
        engine?.close()
        vision?.close()
        tokenizer?.close()
        engine = null
        vision = null
        tokenizer = null
        manifest = null
        generator = null
    }

    override fun onDestroy() {
        super.onDestroy()
        executor.execute { closeModel() } // after any running generation, on the thread that owns the sessions
        executor.shutdown()
    }
}
