// Pure JVM: no Android classes, Java 11 API only (what Android's runtime offers from minSdk 26 on).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

// The tests use their own runner (no JUnit): run them against golden vectors written by
//   python -m edgevlm.testing.android_golden GOLDEN_DIR
// with: ./gradlew :core:goldenTest -Pgolden=GOLDEN_DIR   (core/build.sh --test GOLDEN_DIR does the same without Gradle)
tasks.register<JavaExec>("goldenTest") {
    group = "verification"
    description = "Runs the JVM core against the Python golden vectors (-Pgolden=DIR)."
    dependsOn("testClasses")
    classpath = sourceSets["test"].runtimeClasspath
    mainClass.set("org.edgevlm.core.TestRunner")
    args(project.findProperty("golden")?.toString() ?: error("pass -Pgolden=DIR (see core/build.sh)"))
}
