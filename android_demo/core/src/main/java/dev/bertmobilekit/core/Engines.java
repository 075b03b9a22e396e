package dev.bertmobilekit.core;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Chooses the inference engine for a bundle from its manifest's {@code backend} ("tflite" runs on
 * LiteRT, "onnx" on ONNX Runtime in the app) and opens it on the memory-mapped model. The core
 * depends on no engine: the app registers one {@link Engine} per backend it ships, the JVM tests
 * register fakes.
 */
public final class Engines {
    /** Opens a model for one backend. */
    public interface Engine {
        /**
         * @param bundle the verified bundle (manifest: labels, lengths, input names)
         * @param model the model file, read-only and positioned at 0 (memory-mapped where possible)
         * @param threads CPU threads for inference
         * @throws Exception whatever the engine throws on a model it cannot load
         */
        Backend open(Bundle bundle, ByteBuffer model, int threads) throws Exception;
    }

    private final Map<String, Engine> engines;

    private Engines(Map<String, Engine> engines) {
        this.engines = Collections.unmodifiableMap(new LinkedHashMap<>(engines));
    }

    /** The engines the app ships, by manifest backend name ("tflite", "onnx"). */
    public static Engines of(Map<String, Engine> engines) {
        return new Engines(engines);
    }

    /** The backend names this app can run, in registration order. */
    public List<String> backends() {
        return new ArrayList<>(engines.keySet());
    }

    /**
     * Opens {@code bundle}'s model with the engine its manifest names, and checks that the model
     * takes the inputs the manifest lists (by name, in any order).
     *
     * @throws BundleException no engine for the backend, the engine refused the model, or the
     *     model's inputs differ from the manifest's
     */
    public Backend open(Bundle bundle, int threads) {
        Manifest manifest = bundle.manifest;
        Engine engine = engines.get(manifest.backend);
        if (engine == null) {
            throw new BundleException("bundle " + manifest.name + " needs the " + manifest.backend
                    + " backend; this app runs " + backends() + ": copy a bundle of one of those with "
                    + "`python -m export android`");
        }
        Backend backend;
        try {
            ByteBuffer model = bundle.mapModel();
            backend = engine.open(bundle, model, threads);
        } catch (BundleException e) {
            throw e;
        } catch (Exception e) {
            throw new BundleException(manifest.backend + " could not load " + manifest.modelFile + " of bundle "
                    + manifest.name + ": " + e.getClass().getSimpleName() + ": " + e.getMessage(), e);
        }
        List<String> declared = new ArrayList<>(backend.inputNames());
        List<String> expected = new ArrayList<>(manifest.inputNames);
        Collections.sort(declared);
        Collections.sort(expected);
        if (!declared.equals(expected)) {
            backend.close();
            throw new BundleException(manifest.modelFile + " takes inputs " + backend.inputNames()
                    + ", but the manifest lists " + manifest.inputNames + "; re-export the bundle");
        }
        return backend;
    }
}
