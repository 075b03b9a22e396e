package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The engine is chosen from the manifest and opened on the memory-mapped model (fake engines). */
class EnginesTest {
    /** Records which backend was asked for, with what bytes and threads. */
    static final class Recording implements Engines.Engine {
        final String backendName;
        final List<String> inputs;
        final List<byte[]> models = new ArrayList<>();
        final List<ByteBuffer> buffers = new ArrayList<>();
        final List<Integer> threads = new ArrayList<>();
        boolean closed;

        Recording(String backendName, List<String> inputs) {
            this.backendName = backendName;
            this.inputs = inputs;
        }

        @Override
        public Backend open(Bundle bundle, ByteBuffer model, int threadCount) {
            buffers.add(model);
            byte[] bytes = new byte[model.remaining()];
            model.duplicate().get(bytes);
            models.add(bytes);
            threads.add(threadCount);
            return new Backend() {
                @Override
                public List<String> inputNames() {
                    return inputs;
                }

                @Override
                public float[] run(Map<String, int[]> feeds, int sequenceLength) {
                    return new float[] {0f, 0f, 0f};
                }

                @Override
                public void close() {
                    closed = true;
                }
            };
        }
    }

    private static Engines both(Recording tflite, Recording onnx) {
        Map<String, Engines.Engine> engines = new LinkedHashMap<>();
        engines.put("tflite", tflite);
        engines.put("onnx", onnx);
        return Engines.of(engines);
    }

    private static List<String> names(Bundle bundle) {
        return bundle.manifest.inputNames;
    }

    @Test
    void eachBackendGoesToItsEngineWithTheMappedModelBytes() throws IOException {
        for (String dir : new String[] {"bundle", "onnx-bundle"}) {
            File folder = Goldens.file(dir);
            Bundle bundle = Bundle.load(BundleSource.directory(folder));
            Recording tflite = new Recording("tflite", names(bundle));
            Recording onnx = new Recording("onnx", names(bundle));
            Backend backend = both(tflite, onnx).open(bundle, 3);
            Recording used = bundle.manifest.backend.equals("tflite") ? tflite : onnx;
            Recording unused = used == tflite ? onnx : tflite;
            assertEquals(1, used.models.size(), dir + ": the manifest's engine opens the model once");
            assertTrue(unused.models.isEmpty(), dir + ": the other engine is never asked");
            byte[] onDisk = Files.readAllBytes(new File(folder, bundle.manifest.modelFile).toPath());
            assertArrayEquals(onDisk, used.models.get(0), dir + ": the engine gets the model file's bytes");
            assertTrue(used.buffers.get(0) instanceof MappedByteBuffer, dir + ": a directory bundle is memory-mapped");
            assertTrue(used.buffers.get(0).isReadOnly(), dir + ": the mapping is read-only");
            assertEquals(java.nio.ByteOrder.nativeOrder(), used.buffers.get(0).order(), dir + ": native byte order");
            assertEquals(3, (int) used.threads.get(0));
            assertFalse(used.closed);
            backend.close();
        }
    }

    @Test
    void aBackendTheAppLacksIsRefusedNamingWhatItRuns() {
        Bundle onnxBundle = Bundle.load(BundleSource.directory(Goldens.file("onnx-bundle")));
        Map<String, Engines.Engine> onlyTflite = new LinkedHashMap<>();
        onlyTflite.put("tflite", new Recording("tflite", names(onnxBundle)));
        BundleException e = assertThrows(BundleException.class, () -> Engines.of(onlyTflite).open(onnxBundle, 1));
        assertTrue(e.getMessage().contains("needs the onnx backend; this app runs [tflite]"), e.getMessage());
    }

    @Test
    void anEngineFailureOrAnInputMismatchIsOneBundleError() {
        Bundle bundle = Bundle.load(BundleSource.directory(Goldens.file("bundle")));
        Map<String, Engines.Engine> failing = new LinkedHashMap<>();
        failing.put("tflite", (b, model, threads) -> {
            throw new IllegalArgumentException("Input tensor 0 lacks data");
        });
        BundleException e = assertThrows(BundleException.class, () -> Engines.of(failing).open(bundle, 1));
        assertTrue(e.getMessage().contains("tflite could not load model.tflite of bundle tiny-placeholder-tflite: "
                + "IllegalArgumentException: Input tensor 0 lacks data"), e.getMessage());

        Recording wrongInputs = new Recording("tflite", Arrays.asList("input_ids", "token_type_ids"));
        Map<String, Engines.Engine> mismatched = new LinkedHashMap<>();
        mismatched.put("tflite", wrongInputs);
        BundleException m = assertThrows(BundleException.class, () -> Engines.of(mismatched).open(bundle, 1));
        assertTrue(m.getMessage().contains("takes inputs [input_ids, token_type_ids], but the manifest lists"),
                m.getMessage());
        assertTrue(wrongInputs.closed, "a refused backend is closed");
    }

    @Test
    void aSourceThatCannotMapGivesADirectCopy() throws IOException {
        byte[] data = new byte[70_000];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 31);
        }
        BundleSource streamOnly = new BundleSource() {
            @Override
            public InputStream open(String name) {
                return new ByteArrayInputStream(data);
            }

            @Override
            public String describe() {
                return "memory";
            }
        };
        ByteBuffer buffer = streamOnly.map("model.tflite");
        assertTrue(buffer.isDirect() && buffer.isReadOnly());
        assertEquals(java.nio.ByteOrder.nativeOrder(), buffer.order(), "engines take direct buffers in native order");
        assertEquals(0, buffer.position());
        byte[] back = new byte[buffer.remaining()];
        buffer.get(back);
        assertArrayEquals(data, back);
    }
}
