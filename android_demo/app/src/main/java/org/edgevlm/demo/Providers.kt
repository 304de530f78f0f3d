package org.edgevlm.demo

import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtProvider
import ai.onnxruntime.OrtSession

/** The execution providers the app offers; CPU always works, the others depend on the ONNX Runtime build and device. */
enum class ExecutionChoice(val label: String, val provider: OrtProvider) {
    CPU("CPU", OrtProvider.CPU),
    XNNPACK("CPU (XNNPACK)", OrtProvider.XNNPACK),
    NNAPI("NNAPI (GPU/NPU)", OrtProvider.NNAPI),
    QNN("QNN (Qualcomm NPU)", OrtProvider.QNN),
}

/** An execution provider is not in this ONNX Runtime build; the message says which package has it. */
class ProviderUnavailable(message: String) : Exception(message)

object Providers {
    fun available(): Set<OrtProvider> = OrtEnvironment.getAvailableProviders()

    /**
     * Adds [choice] to [options] (ONNX Runtime falls back to CPU for operators the provider does not take).
     * Throws [ProviderUnavailable] with the fix when the provider is missing from this build.
     */
    fun configure(options: OrtSession.SessionOptions, choice: ExecutionChoice, threads: Int) {
        if (choice != ExecutionChoice.CPU && choice.provider !in available()) {
            val fix = when (choice) {
                ExecutionChoice.QNN -> "build the app with com.microsoft.onnxruntime:onnxruntime-android-qnn " +
                    "instead of onnxruntime-android (app/build.gradle.kts) and run it on a Snapdragon device"
                else -> "use the standard com.microsoft.onnxruntime:onnxruntime-android package"
            }
            throw ProviderUnavailable(
                "${choice.label} is not available in this ONNX Runtime build (it has: " +
                    available().joinToString { it.name } + "). Choose CPU, or $fix."
            )
        }
        options.setIntraOpNumThreads(threads)
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT)
        when (choice) {
            ExecutionChoice.CPU -> Unit
            // XNNPACK runs its own thread pool: ONNX Runtime recommends 1 intra-op thread beside it.
            ExecutionChoice.XNNPACK -> {
                options.setIntraOpNumThreads(1)
                options.addXnnpack(mapOf("intra_op_num_threads" to threads.toString()))
            }
            ExecutionChoice.NNAPI -> options.addNnapi()
            ExecutionChoice.QNN -> options.addQnn(mapOf("backend_path" to "libQnnHtp.so"))
        }
    }
}
