package dev.bertmobilekit.demo

import android.os.Build
import android.util.Log
import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import dev.bertmobilekit.core.Bundle
import dev.bertmobilekit.core.TextClassifier
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import java.util.Locale

/**
 * The bundle that `python -m export android` put into the APK, through the real engine on this
 * device: every golden example of the manifest (the texts Python classified at export time) must
 * give the same token ids and logits within the bundle's tolerance. Prints one line to report
 * (logcat tag BundleSelfTest, and the instrumentation status): device, ABI, bundle, self-test
 * result, p50 at 1 thread.
 *
 *   ./gradlew connectedDebugAndroidTest      (a phone over adb, or an emulator)
 */
@RunWith(AndroidJUnit4::class)
class BundleSelfTest {
    @Test
    fun goldenExamplesMatchOnTheRealEngine() {
        val context = InstrumentationRegistry.getInstrumentation().targetContext
        val bundle = Bundle.load(AssetBundleSource(context.assets))
        assertTrue("the bundle has no golden examples: re-export it", bundle.manifest.golden.isNotEmpty())
        TextClassifier(bundle, APP_ENGINES.open(bundle, 1)).use { classifier ->
            val report = classifier.selfTest()
            val latency = classifier.measure(bundle.manifest.golden[0].text, 3, 20)
            val line = String.format(
                Locale.ROOT,
                "device %s %s (Android %s, ABI %s): bundle %s (%s %s): %s; p50 %.2f ms (model %.2f ms), 1 thread",
                Build.MANUFACTURER, Build.MODEL, Build.VERSION.RELEASE, Build.SUPPORTED_ABIS.firstOrNull(),
                bundle.manifest.name, bundle.manifest.backend, bundle.manifest.precision, report.summary(),
                latency.p50Ms, latency.modelP50Ms,
            )
            Log.i("BundleSelfTest", line)
            InstrumentationRegistry.getInstrumentation().sendStatus(
                0, android.os.Bundle().apply { putString("stream", "$line\n") },
            )
            val failed = report.checks.filterNot { it.passed() }
                .joinToString("\n") { "ids ${if (it.idsMatch) "equal" else "DIFFER"}, max |Δ| ${it.maxDelta}: ${it.text}" }
            assertTrue("$line\nfailed:\n$failed", report.passed())
        }
    }
}
