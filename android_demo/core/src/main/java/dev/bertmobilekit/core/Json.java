package dev.bertmobilekit.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small strict JSON parser (RFC 8259): objects become {@code Map<String, Object>} in file order,
 * arrays {@code List<Object>}, integers without fraction or exponent {@code Long}, other numbers
 * {@code Double}, plus {@code String}, {@code Boolean} and {@code null}.
 *
 * <p>Stricter than Python's {@code json}: duplicate keys, NaN/Infinity, trailing commas, leading
 * zeros and unescaped control characters are errors, so a manifest that parses here means one
 * thing only.
 */
public final class Json {
    private final String text;
    private int pos;

    private Json(String text) {
        this.text = text;
    }

    /**
     * Parses one JSON document.
     *
     * @throws JsonException on any syntax error, with the character offset
     */
    public static Object parse(String text) {
        Json parser = new Json(text);
        parser.skipWhitespace();
        Object value = parser.value(0);
        parser.skipWhitespace();
        if (parser.pos != text.length()) {
            throw parser.error("unexpected trailing content");
        }
        return value;
    }

    /** A syntax error. */
    public static final class JsonException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        JsonException(String message) {
            super(message);
        }
    }

    private static final int MAX_DEPTH = 512;

    private Object value(int depth) {
        if (depth > MAX_DEPTH) {
            throw error("nesting deeper than " + MAX_DEPTH);
        }
        if (pos >= text.length()) {
            throw error("unexpected end of input");
        }
        char c = text.charAt(pos);
        switch (c) {
            case '{':
                return object(depth);
            case '[':
                return array(depth);
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", null);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw error("unexpected character '" + c + "'");
        }
    }

    private Map<String, Object> object(int depth) {
        pos++; // '{'
        Map<String, Object> out = new LinkedHashMap<>();
        skipWhitespace();
        if (peek() == '}') {
            pos++;
            return out;
        }
        while (true) {
            skipWhitespace();
            if (peek() != '"') {
                throw error("expected a string key");
            }
            int keyAt = pos;
            String key = string();
            skipWhitespace();
            expect(':');
            skipWhitespace();
            Object value = value(depth + 1);
            if (out.containsKey(key)) {
                pos = keyAt;
                throw error("duplicate key \"" + key + "\"");
            }
            out.put(key, value);
            skipWhitespace();
            char c = peek();
            pos++;
            if (c == '}') {
                return out;
            }
            if (c != ',') {
                pos--;
                throw error("expected ',' or '}'");
            }
        }
    }

    private List<Object> array(int depth) {
        pos++; // '['
        List<Object> out = new ArrayList<>();
        skipWhitespace();
        if (peek() == ']') {
            pos++;
            return out;
        }
        while (true) {
            skipWhitespace();
            out.add(value(depth + 1));
            skipWhitespace();
            char c = peek();
            pos++;
            if (c == ']') {
                return out;
            }
            if (c != ',') {
                pos--;
                throw error("expected ',' or ']'");
            }
        }
    }

    private String string() {
        pos++; // opening quote
        StringBuilder out = new StringBuilder();
        while (true) {
            if (pos >= text.length()) {
                throw error("unterminated string");
            }
            char c = text.charAt(pos++);
            if (c == '"') {
                return out.toString();
            }
            if (c < 0x20) {
                pos--;
                throw error("unescaped control character in string");
            }
            if (c != '\\') {
                out.append(c);
                continue;
            }
            if (pos >= text.length()) {
                throw error("unterminated escape");
            }
            char e = text.charAt(pos++);
            switch (e) {
                case '"': out.append('"'); break;
                case '\\': out.append('\\'); break;
                case '/': out.append('/'); break;
                case 'b': out.append('\b'); break;
                case 'f': out.append('\f'); break;
                case 'n': out.append('\n'); break;
                case 'r': out.append('\r'); break;
                case 't': out.append('\t'); break;
                case 'u': out.append(hex4()); break;
                default:
                    pos--;
                    throw error("invalid escape '\\" + e + "'");
            }
        }
    }

    private char hex4() {
        if (pos + 4 > text.length()) {
            throw error("truncated \\u escape");
        }
        int value = 0;
        for (int i = 0; i < 4; i++) {
            int digit = Character.digit(text.charAt(pos++), 16);
            if (digit < 0) {
                pos--;
                throw error("invalid hex digit in \\u escape");
            }
            value = value * 16 + digit;
        }
        return (char) value; // surrogate pairs arrive as two escapes, joined by the StringBuilder
    }

    private Object number() {
        int start = pos;
        boolean integral = true;
        if (peek() == '-') {
            pos++;
        }
        if (peek() == '0') {
            pos++;
            if (isDigit(peek())) {
                throw error("leading zero in number");
            }
        } else if (!digits()) {
            throw error("expected digits");
        }
        if (peek() == '.') {
            integral = false;
            pos++;
            if (!digits()) {
                throw error("expected digits after '.'");
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            integral = false;
            pos++;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (!digits()) {
                throw error("expected digits in exponent");
            }
        }
        String literal = text.substring(start, pos);
        if (integral) {
            try {
                return Long.parseLong(literal);
            } catch (NumberFormatException overflow) {
                pos = start;
                throw error("integer out of 64-bit range");
            }
        }
        return Double.parseDouble(literal); // Java's parse is correctly rounded, like Python's
    }

    private boolean digits() {
        int start = pos;
        while (isDigit(peek())) {
            pos++;
        }
        return pos > start;
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private Object literal(String word, Object value) {
        if (!text.startsWith(word, pos)) {
            throw error("invalid literal");
        }
        pos += word.length();
        return value;
    }

    private char peek() {
        return pos < text.length() ? text.charAt(pos) : '\0';
    }

    private void expect(char c) {
        if (peek() != c) {
            throw error("expected '" + c + "'");
        }
        pos++;
    }

    private void skipWhitespace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    private JsonException error(String what) {
        return new JsonException("invalid JSON at offset " + pos + ": " + what);
    }

    // --- typed access, shared by Manifest and BertTokenizer ---------------------------------

    /** Returns {@code value} as an object, or throws {@link BundleException} naming {@code where}. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> asObject(Object value, String where) {
        if (!(value instanceof Map)) {
            throw new BundleException(where + " must be a JSON object, got " + describe(value));
        }
        return (Map<String, Object>) value;
    }

    /** Returns {@code value} as an array, or throws {@link BundleException} naming {@code where}. */
    @SuppressWarnings("unchecked")
    static List<Object> asArray(Object value, String where) {
        if (!(value instanceof List)) {
            throw new BundleException(where + " must be a JSON array, got " + describe(value));
        }
        return Collections.unmodifiableList((List<Object>) value);
    }

    static String describe(Object value) {
        if (value == null) {
            return "null";
        }
        String text = value instanceof String ? "\"" + value + "\"" : String.valueOf(value);
        if (text.length() > 60) {
            text = text.substring(0, 57) + "...";
        }
        String type = value instanceof Map ? "object" : value instanceof List ? "array"
                : value instanceof String ? "string" : value instanceof Boolean ? "bool"
                : value instanceof Long ? "int" : value instanceof Double ? "float" : "value";
        return type + " " + text;
    }
}
