plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.edgevlm.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.edgevlm.demo"
        minSdk = 26 // java.nio.file (the core's bundle reader) needs API 26
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64") // phones + the emulator
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }
    kotlinOptions {
        jvmTarget = "11"
    }
    buildFeatures {
        viewBinding = true
    }
    packaging {
        jniLibs {
            useLegacyPackaging = false
        }
    }
}

dependencies {
    implementation(project(":core"))

    // ONNX Runtime with the CPU, XNNPACK and NNAPI execution providers. For Qualcomm NPUs (QNN) use
    // "com.microsoft.onnxruntime:onnxruntime-android-qnn" instead (same API); the app says so when QNN is missing.
    // 1.23 or newer: the default ONNX decoder graph uses opset 23 Attention/RotaryEmbedding/RMSNormalization.
    // For older runtimes, and for NNAPI/QNN to take the whole decoder, export with --decoder-graph portable.
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.23.0")

    // tokenizer.json through the Hugging Face tokenizers library (JNI), as the Python runtime does.
    implementation("ai.djl.huggingface:tokenizers:0.30.0")
    implementation("ai.djl.android:tokenizer-native:0.30.0")

    implementation("androidx.core:core-ktx:1.13.1")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.1")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.4")
    implementation("androidx.exifinterface:exifinterface:1.3.7")
    implementation("com.google.android.material:material:1.12.0")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.8.1")
}
