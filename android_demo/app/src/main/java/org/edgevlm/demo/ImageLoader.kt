package org.edgevlm.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import org.edgevlm.core.ImageException
import org.edgevlm.core.RgbImage

/**
 * A picked or captured photo -> upright 8-bit RGB at full resolution (edgevlm/processing/images.py load_image):
 * EXIF orientation applied, alpha composited on white (in RgbImage.fromArgb). No downscaling here: the slicer
 * must see the same pixels as the Python processor.
 */
object ImageLoader {
    fun load(resolver: ContentResolver, uri: Uri, maxPixels: Long?): RgbImage {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw ImageException("$uri: not a readable image; give a JPEG/PNG/WebP file")
        }
        val pixels = bounds.outWidth.toLong() * bounds.outHeight
        if (maxPixels != null && pixels > maxPixels) {
            throw ImageException("$uri: image is ${bounds.outWidth}x${bounds.outHeight} = $pixels pixels, over the " +
                "limit of $maxPixels; downscale it first")
        }
        val options = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
        val decoded = resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw ImageException("$uri: image data is corrupt or truncated; re-export or re-download it")
        val upright = applyOrientation(decoded, resolver, uri)
        val argb = IntArray(upright.width * upright.height)
        upright.getPixels(argb, 0, upright.width, 0, 0, upright.width, upright.height)
        return RgbImage.fromArgb(upright.width, upright.height, argb)
    }

    /** Rotations and mirrors are exact pixel permutations (no filtering), as Pillow's exif_transpose. */
    private fun applyOrientation(bitmap: Bitmap, resolver: ContentResolver, uri: Uri): Bitmap {
        val orientation = resolver.openInputStream(uri).use {
            if (it == null) ExifInterface.ORIENTATION_NORMAL
            else ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
        val m = Matrix()
        when (orientation) {
            ExifInterface.ORIENTATION_FLIP_HORIZONTAL -> m.setScale(-1f, 1f)
            ExifInterface.ORIENTATION_ROTATE_180 -> m.setRotate(180f)
            ExifInterface.ORIENTATION_FLIP_VERTICAL -> m.setScale(1f, -1f)
            ExifInterface.ORIENTATION_TRANSPOSE -> { m.setRotate(90f); m.postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_ROTATE_90 -> m.setRotate(90f)
            ExifInterface.ORIENTATION_TRANSVERSE -> { m.setRotate(-90f); m.postScale(-1f, 1f) }
            ExifInterface.ORIENTATION_ROTATE_270 -> m.setRotate(-90f)
            else -> return bitmap
        }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, m, false)
    }
}
