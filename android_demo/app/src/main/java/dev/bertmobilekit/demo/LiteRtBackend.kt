package dev.bertmobilekit.demo

import dev.bertmobilekit.core.Backend
import dev.bertmobilekit.core.Bundle
import dev.bertmobilekit.core.BundleException
import dev.bertmobilekit.core.Manifest
import dev.bertmobilekit.core.QuantizedLogits
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The bundle's .tflite model on LiteRT (CPU, XNNPACK, [threads] threads), fed by name through a
 * signature runner, created from the memory-mapped model (no copy on the Java heap). A bucketed model has one signature `len_<n>` per sequence length; any other
 * has `serving_default` or a single signature. Checked against the manifest once: the model's
 * lengths are the manifest's buckets (or fixed_length), every input is int32 [1, n], the one
 * output is float32 [1, labels], or int8 [1, labels] with the model's scale and zero point
 * (`int8-full-int8-io`), which the core's QuantizedLogits turns into floats as the Python runtime does.
 */
class LiteRtBackend(bundle: Bundle, model: ByteBuffer, threads: Int) : Backend {
    private val interpreter: Interpreter
    private val signatures: Map<Int, String> // sequence length -> signature key
    private val inputs: List<String>
    private val outputs: Map<String, String> // signature key -> its only output
    private val quantized = mutableMapOf<String, QuantizedLogits>() // signature key -> int8 logits' parameters
    private val numLabels = bundle.manifest.labels.size
    private val int8Logits = ByteBuffer.allocateDirect(numLabels).order(ByteOrder.nativeOrder()) // int8 models' output

    init {
        val manifest = bundle.manifest
        // sha256 checked by Bundle.load; the buffer is the mapped asset (Engines.open)
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true))
        val keys = interpreter.signatureKeys.toList()
        val bucketKeys = keys.mapNotNull { key -> BUCKET.matchEntire(key)?.let { it.groupValues[1].toInt() to key } }
        val single = keys.singleOrNull() ?: "serving_default".takeIf { it in keys }
        signatures = when {
            bucketKeys.isNotEmpty() -> bucketKeys.toMap().toSortedMap()
            single != null -> mapOf(manifest.fixedLength to single)
            else -> emptyMap()
        }
        val first = signatures.values.firstOrNull()
        inputs = if (first == null) emptyList() else interpreter.getSignatureInputs(first).toList()
        outputs = signatures.values.associateWith { interpreter.getSignatureOutputs(it).singleOrNull().orEmpty() }
        try {
            verify(manifest, keys)
        } catch (e: RuntimeException) {
            interpreter.close()
            throw e
        }
    }

    private fun verify(manifest: Manifest, keys: List<String>) {
        val file = manifest.modelFile
        if (signatures.isEmpty()) {
            throw BundleException("$file has signatures $keys; expected len_<n> buckets, serving_default or exactly one")
        }
        if (signatures.keys.toList() != manifest.sequenceLengths()) {
            throw BundleException(
                "$file takes sequences of ${signatures.keys.toList()} tokens, but the manifest says " +
                    "${manifest.sequenceLengths()} (buckets / fixed_length); re-export the bundle",
            )
        }
        for ((length, key) in signatures) {
            val own = interpreter.getSignatureInputs(key).toList()
            if (own != inputs) {
                throw BundleException(
                    "$file signature '$key' takes $own, but '${signatures.values.first()}' takes $inputs; " +
                        "every bucket must take the same inputs",
                )
            }
            for (name in inputs) {
                val tensor = interpreter.getInputTensorFromSignature(name, key)
                if (tensor.dataType() != DataType.INT32 || tensor.shape().toList() != listOf(1, length)) {
                    throw BundleException(
                        "$file signature '$key' input '$name' is ${tensor.dataType()} ${tensor.shape().toList()}; " +
                            "expected int32 [1, $length]; re-export the bundle",
                    )
                }
            }
            val outputName = outputs.getValue(key)
            if (outputName.isEmpty()) {
                throw BundleException("$file signature '$key' must have exactly one output (the logits)")
            }
            val output = interpreter.getOutputTensorFromSignature(outputName, key)
            val type = output.dataType()
            if ((type != DataType.FLOAT32 && type != DataType.INT8) || output.shape().toList() != listOf(1, numLabels)) {
                throw BundleException(
                    "$file signature '$key' output is $type ${output.shape().toList()}; expected float32 or int8 " +
                        "[1, $numLabels] (the manifest has $numLabels labels); re-export the bundle",
                )
            }
            if (type == DataType.INT8) {
                val params = output.quantizationParams()
                quantized[key] = QuantizedLogits(params.scale, params.zeroPoint) // refuses a missing scale
            }
        }
    }

    override fun inputNames(): List<String> = inputs

    override fun run(inputs: Map<String, IntArray>, sequenceLength: Int): FloatArray {
        val key = signatures[sequenceLength]
            ?: throw IllegalArgumentException("the model takes ${signatures.keys} tokens, not $sequenceLength")
        val feeds: Map<String, Any> = inputs.mapValues { (_, values) -> arrayOf(values) } // shape [1, sequenceLength]
        val int8 = quantized[key]
        if (int8 != null) {
            int8Logits.rewind() // reused across calls (the interpreter is not thread-safe anyway); LiteRT writes from 0
            interpreter.runSignature(feeds, mapOf<String, Any>(outputs.getValue(key) to int8Logits), key)
            return int8.dequantize(int8Logits, numLabels)
        }
        val logits = arrayOf(FloatArray(numLabels))
        interpreter.runSignature(feeds, mapOf<String, Any>(outputs.getValue(key) to logits), key)
        return logits[0]
    }

    override fun close() = interpreter.close()

    private companion object {
        val BUCKET = Regex("len_(\\d+)")
    }
}
