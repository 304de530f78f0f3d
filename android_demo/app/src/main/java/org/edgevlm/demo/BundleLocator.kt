package org.edgevlm.demo

import android.content.Context
import java.io.File

/**
 * Where the app looks for a bundle pushed with adb (README): the first of these holding manifest.json.
 *  1. <app files>/bundle                        (internal; copied there with `adb shell run-as`)
 *  2. /sdcard/Android/data/org.edgevlm.demo/files/bundle   (app-specific external storage; plain `adb push`)
 *  3. /data/local/tmp/edgevlm/bundle            (readable by apps on emulators / some debug builds only)
 */
object BundleLocator {
    fun candidates(context: Context): List<File> = listOfNotNull(
        File(context.filesDir, "bundle"),
        context.getExternalFilesDir(null)?.let { File(it, "bundle") },
        File("/data/local/tmp/edgevlm/bundle"),
    )

    fun find(context: Context): File? = candidates(context).firstOrNull { File(it, "manifest.json").isFile }
}
