package dev.bertmobilekit.demo

import dev.bertmobilekit.core.Engines

/**
 * The engines this app ships, chosen by the bundle manifest's `backend` (Engines.open checks the
 * model's inputs against the manifest): LiteRT for .tflite bundles, ONNX Runtime for .onnx ones.
 * Both get the memory-mapped model.
 */
val APP_ENGINES: Engines = Engines.of(
    linkedMapOf<String, Engines.Engine>(
        "tflite" to Engines.Engine { bundle, model, threads -> LiteRtBackend(bundle, model, threads) },
        "onnx" to Engines.Engine { bundle, model, threads -> OnnxBackend(bundle, model, threads) },
    ),
)
