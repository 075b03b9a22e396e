package dev.bertmobilekit.demo

import android.content.res.AssetManager
import dev.bertmobilekit.core.BundleSource
import java.io.InputStream

/** The bundle that `python -m export android` copied into the APK's assets. */
class AssetBundleSource(private val assets: AssetManager, private val dir: String = "bundle") : BundleSource {
    // AssetManager.open throws FileNotFoundException for a missing asset, as BundleSource requires.
    override fun open(name: String): InputStream = assets.open("$dir/$name")

    override fun describe(): String = "assets/$dir"
}
