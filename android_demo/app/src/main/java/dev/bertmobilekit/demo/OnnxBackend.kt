package dev.bertmobilekit.demo

import ai.onnxruntime.OnnxJavaType
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import ai.onnxruntime.TensorInfo
import dev.bertmobilekit.core.Backend
import dev.bertmobilekit.core.Bundle
import dev.bertmobilekit.core.BundleException
import java.nio.ByteBuffer
import java.nio.IntBuffer
import java.nio.LongBuffer

/**
 * The bundle's .onnx model on ONNX Runtime (CPU, [threads] intra-op threads), dynamic sequence
 * length (no buckets: the text's own length). Created from the memory-mapped model (ORT reads a
 * direct buffer without copying it onto the Java heap). Inputs are bound by name; each is int64
 * or int32 [batch, sequence], as the graph declares; the one output is float32 [1, labels].
 * Runs one text per call, as the kit's verify measured it (ONNX dynamic int8 takes one activation
 * scale per batch).
 */
class OnnxBackend(bundle: Bundle, model: ByteBuffer, threads: Int) : Backend {
    private val env: OrtEnvironment = OrtEnvironment.getEnvironment()
    private val session: OrtSession
    private val inputTypes: Map<String, OnnxJavaType>
    private val numLabels = bundle.manifest.labels.size

    init {
        val options = OrtSession.SessionOptions().apply {
            setIntraOpNumThreads(threads)
            setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT)
        }
        session = env.createSession(model, options)
        try {
            inputTypes = session.inputInfo.mapValues { (name, node) ->
                val info = node.info as? TensorInfo
                    ?: throw BundleException("${bundle.manifest.modelFile} input '$name' is not a tensor")
                if (info.type != OnnxJavaType.INT64 && info.type != OnnxJavaType.INT32) {
                    throw BundleException(
                        "${bundle.manifest.modelFile} input '$name' is ${info.type}; expected int64 or int32 token ids",
                    )
                }
                info.type
            }
            if (session.outputNames.size != 1) {
                throw BundleException("${bundle.manifest.modelFile} must have exactly one output (the logits)")
            }
        } catch (e: RuntimeException) {
            session.close()
            throw e
        }
    }

    override fun inputNames(): List<String> = session.inputNames.toList()

    override fun run(inputs: Map<String, IntArray>, sequenceLength: Int): FloatArray {
        val shape = longArrayOf(1, sequenceLength.toLong())
        val tensors = inputs.mapValues { (name, values) ->
            when (inputTypes[name]) {
                OnnxJavaType.INT64 -> OnnxTensor.createTensor(
                    env, LongBuffer.wrap(LongArray(values.size) { values[it].toLong() }), shape,
                )
                OnnxJavaType.INT32 -> OnnxTensor.createTensor(env, IntBuffer.wrap(values), shape)
                else -> throw IllegalArgumentException("the model takes no input '$name'")
            }
        }
        try {
            session.run(tensors).use { result ->
                @Suppress("UNCHECKED_CAST")
                val logits = (result.get(0).value as Array<FloatArray>)[0]
                if (logits.size != numLabels) {
                    throw BundleException("the model returned ${logits.size} logits, the manifest has $numLabels labels")
                }
                return logits
            }
        } finally {
            tensors.values.forEach { it.close() }
        }
    }

    override fun close() = session.close()
}
