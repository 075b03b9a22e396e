package dev.bertmobilekit.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonTest {
    @Test
    void parsesEveryValueKind() {
        Map<String, Object> o = Json.asObject(Json.parse(
                " {\"a\": [1, -2.5e-3, true, false, null], \"s\": \"\\u00e9\\ud83d\\ude00\\n\\\"\", \"n\": {}} "), "o");
        assertEquals(Arrays.asList(1L, -2.5e-3, true, false, null), o.get("a"));
        assertEquals("é😀\n\"", o.get("s"));
        assertTrue(((Map<?, ?>) o.get("n")).isEmpty());
        assertEquals(Arrays.asList("a", "s", "n"), Arrays.asList(o.keySet().toArray()));
        assertNull(Json.parse("null"));
        assertEquals(0.1, Json.parse("0.1"));
        assertEquals(List.of(), Json.parse("[]"));
    }

    @Test
    void rejectsWhatPythonWouldNotWrite() {
        for (String bad : new String[] {"{\"a\":1,\"a\":2}", "[1,]", "{\"a\":1,}", "01", "NaN", "[Infinity]",
                "\"tab\there\"", "{'a':1}", "[1] x", "", "{\"a\"}", "\"\\x\"", "1.", "-", "tru", "[1e]"}) {
            assertThrows(Json.JsonException.class, () -> Json.parse(bad), bad);
        }
    }
}
