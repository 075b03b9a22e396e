package dev.bertmobilekit.demo

import android.app.Activity
import android.os.Bundle as SavedState
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import dev.bertmobilekit.core.Bundle
import dev.bertmobilekit.core.TextClassifier
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * One screen: bundle facts, a text box, Classify (label, probabilities, p50 latency over
 * [RUNS] runs) and Self-test (the manifest's golden examples). All logic is in the Java core;
 * this class only moves text between views and a single background thread.
 */
class MainActivity : Activity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    @Volatile private var bundle: Bundle? = null // set on the worker thread, read on both
    private var classifier: TextClassifier? = null // worker thread only
    private var classifierThreads = 0

    private lateinit var info: TextView
    private lateinit var input: EditText
    private lateinit var threads: EditText
    private lateinit var result: TextView
    private lateinit var buttons: List<Button>

    override fun onCreate(savedInstanceState: SavedState?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        info = findViewById(R.id.bundle_info)
        input = findViewById(R.id.input)
        threads = findViewById(R.id.threads)
        result = findViewById(R.id.result)
        val classify = findViewById<Button>(R.id.classify)
        val selfTest = findViewById<Button>(R.id.self_test)
        buttons = listOf(classify, selfTest)
        classify.setOnClickListener { onClassify() }
        selfTest.setOnClickListener { onSelfTest() }
        background({ describe(Bundle.load(AssetBundleSource(assets)).also { bundle = it }) }) { text ->
            info.text = text
            buttons.forEach { it.isEnabled = true }
        }
    }

    override fun onDestroy() {
        worker.execute { classifier?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    private fun onClassify() {
        val text = input.text.toString()
        val threadCount = threadSetting()
        background({
            val clf = classifier(threadCount)
            val prediction = clf.classify(text)
            val latency = clf.measure(text, WARMUP, RUNS)
            buildString {
                append("label: ${prediction.label} (${pct(prediction.score)})\n")
                prediction.probabilities.forEach { (label, p) -> append("  ${label.padEnd(12)} ${pct(p)}\n") }
                if (prediction.truncated) append("(text cut at max_length ${clf.manifest.maxLength} tokens)\n")
                append(
                    String.format(
                        Locale.ROOT,
                        "latency over %d runs, %d thread(s): p50 %.2f ms, p90 %.2f ms (model p50 %.2f ms)",
                        latency.runs, threadCount, latency.p50Ms, latency.p90Ms, latency.modelP50Ms,
                    ),
                )
            }
        }) { result.text = it }
    }

    private fun onSelfTest() {
        val threadCount = threadSetting()
        background({
            val report = classifier(threadCount).selfTest()
            buildString {
                append(report.summary()).append("\n\n")
                report.checks.forEach { c ->
                    val mark = if (c.passed()) "ok  " else "FAIL"
                    val ids = if (c.idsMatch) "ids equal" else "ids DIFFER"
                    append(String.format(Locale.ROOT, "%s %s, max |Δ| %.2g  %s\n", mark, ids, c.maxDelta, c.text.take(48)))
                }
            }
        }) { result.text = it }
    }

    /** The classifier for the thread setting, rebuilt when it changes (worker thread only). */
    private fun classifier(threadCount: Int): TextClassifier {
        val current = classifier
        if (current != null && classifierThreads == threadCount) return current
        current?.close()
        classifier = null
        val loaded = bundle ?: error("the bundle did not load")
        return TextClassifier(loaded, APP_ENGINES.open(loaded, threadCount)).also {
            classifier = it
            classifierThreads = threadCount
        }
    }

    private fun threadSetting(): Int = threads.text.toString().toIntOrNull()?.coerceIn(1, 8) ?: 1

    /** Runs [work] on the worker thread, then [show]s its result, or the error, on the UI thread. */
    private fun background(work: () -> String, show: (String) -> Unit) {
        buttons.forEach { it.isEnabled = false }
        worker.execute {
            val outcome = runCatching(work)
            runOnUiThread {
                if (isDestroyed) return@runOnUiThread
                outcome.fold(show) { e ->
                    if (bundle == null) info.text = getString(R.string.no_bundle)
                    result.text = "${e.javaClass.simpleName}: ${e.message}\n\n$HELP"
                }
                buttons.forEach { it.isEnabled = bundle != null }
            }
        }
    }

    private fun describe(b: Bundle): String {
        val m = b.manifest
        return "bundle ${m.name}: ${m.modelType}, ${m.backend} ${m.precision}\n" +
            "labels ${m.labels}, inputs ${m.inputNames}\n" +
            "max_length ${m.maxLength}, padded to ${m.sequenceLengths().ifEmpty { "the text's length" }}, " +
            "lowercase ${m.lowercase}, " +
            "${m.golden.size} golden examples, ${m.files.size} files sha256-verified"
    }

    private fun pct(p: Double) = String.format(Locale.ROOT, "%.1f%%", 100 * p)

    private companion object {
        const val WARMUP = 3
        const val RUNS = 20
        const val HELP = "If the bundle is missing or refused, copy one with:\n" +
            "python -m export android --bundle out/bundles/student-tflite-int8-dynamic --app android_demo\n" +
            "(or an ONNX bundle, e.g. out/bundles/student-onnx-int8-dynamic)"
    }
}
