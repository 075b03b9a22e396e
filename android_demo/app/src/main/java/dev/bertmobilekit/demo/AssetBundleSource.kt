package dev.bertmobilekit.demo

import android.content.res.AssetManager
import dev.bertmobilekit.core.BundleSource
import java.io.FileInputStream
import java.io.InputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

/** The bundle that `python -m export android` copied into the APK's assets. */
class AssetBundleSource(private val assets: AssetManager, private val dir: String = "bundle") : BundleSource {
    // AssetManager.open throws FileNotFoundException for a missing asset, as BundleSource requires.
    override fun open(name: String): InputStream = assets.open("$dir/$name")

    override fun describe(): String = "assets/$dir"

    /**
     * Memory-maps the asset inside the APK: the model stays out of the Java heap (loading costs its
     * size once, not twice). Needs the file stored uncompressed (`noCompress` for tflite and onnx in
     * app/build.gradle.kts); a compressed asset has no file descriptor, and then the core's default
     * copies it into a direct buffer instead.
     */
    override fun map(name: String): ByteBuffer {
        val fd = try {
            assets.openFd("$dir/$name")
        } catch (e: java.io.FileNotFoundException) {
            if (e.message?.contains("compressed") == true) return super.map(name)
            throw e
        }
        return fd.use {
            FileInputStream(it.fileDescriptor).channel.use { channel ->
                channel.map(FileChannel.MapMode.READ_ONLY, it.startOffset, it.declaredLength)
                    .order(ByteOrder.nativeOrder())
            }
        }
    }
}
