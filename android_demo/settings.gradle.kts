// The Android demo: ":core" is the pure-JVM library the Python golden vectors test (also built by
// core/build.sh without Gradle); ":app" is the Kotlin app that implements the core's engine with ONNX Runtime.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "edgevlm-android-demo"
include(":core", ":app")
