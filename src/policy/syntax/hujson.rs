//! HuJSON (JSON with `//` and `/* */` comments and trailing commas), the
//! format of Tailscale policy files. Parses into a `serde_json::Value` plus a
//! map from JSON-pointer paths (`/acls/0/src/1`) to the 1-based line:column
//! where that value starts, so later validation errors can point at the text.
//! Depends on nothing else in `policy`.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

/// A parse error with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

/// Where each value starts, keyed by JSON pointer ("" is the root).
pub type Positions = HashMap<String, (usize, usize)>;

/// Deepest nesting accepted: bounds recursion on hostile input.
const MAX_DEPTH: usize = 128;

pub fn parse(src: &str) -> Result<(Value, Positions), SyntaxError> {
    let mut p = Parser {
        s: src.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
        pos: HashMap::new(),
    };
    p.ws()?;
    let v = p.value(String::new(), 0)?;
    p.ws()?;
    if p.i < p.s.len() {
        return Err(p.err("unexpected content after the top-level value"));
    }
    Ok((v, p.pos))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
    pos: Positions,
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> SyntaxError {
        SyntaxError {
            line: self.line,
            col: self.col,
            msg: msg.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xC0 != 0x80 {
            // Count characters, not UTF-8 continuation bytes.
            self.col += 1;
        }
        Some(c)
    }

    /// Skips whitespace and comments.
    fn ws(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => {
                    self.bump();
                }
                Some(b'/') => match self.s.get(self.i + 1) {
                    Some(b'/') => {
                        while let Some(c) = self.peek() {
                            if c == b'\n' {
                                break;
                            }
                            self.bump();
                        }
                    }
                    Some(b'*') => {
                        let start = self.err("unterminated block comment");
                        self.bump();
                        self.bump();
                        loop {
                            match self.bump() {
                                None => return Err(start),
                                Some(b'*') if self.peek() == Some(b'/') => {
                                    self.bump();
                                    break;
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => return Err(self.err("invalid character '/'")),
                },
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, path: String, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.pos.insert(path.clone(), (self.line, self.col));
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(path, depth),
            Some(b'[') => self.array(path, depth),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(c) => Err(self.err(&format!("invalid character {:?}", c as char))),
        }
    }

    fn word(&mut self, w: &str, v: Value) -> Result<Value, SyntaxError> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            for _ in 0..w.len() {
                self.bump();
            }
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.i;
        let at = self.err("invalid number");
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E') {
                self.bump();
            } else {
                break;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| at.clone())?;
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        let f: f64 = text.parse().map_err(|_| at.clone())?;
        Number::from_f64(f).map(Value::Number).ok_or(at)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.err("unterminated string");
        self.bump();
        let mut out = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(start);
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.bump().ok_or_else(|| start.clone())?;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.peek() == Some(b'\\')
                                && self.s.get(self.i + 1) == Some(&b'u')
                            {
                                self.bump();
                                self.bump();
                                let lo = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.err("invalid escape in string")),
                    }
                }
                c if c < 0x20 => return Err(self.err("control character in string")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8 in string"))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let c = self.bump().ok_or_else(|| self.err("short \\u escape"))?;
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn object(&mut self, path: String, depth: usize) -> Result<Value, SyntaxError> {
        self.bump();
        let mut m = Map::new();
        loop {
            self.ws()?;
            match self.peek() {
                Some(b'}') => {
                    self.bump();
                    return Ok(Value::Object(m));
                }
                Some(b'"') => {}
                _ => return Err(self.err("expected a string key or '}'")),
            }
            let key_at = (self.line, self.col);
            let key = self.string()?;
            if m.contains_key(&key) {
                let (line, col) = key_at;
                return Err(SyntaxError {
                    line,
                    col,
                    msg: format!("duplicate key {key:?}"),
                });
            }
            self.ws()?;
            if self.bump() != Some(b':') {
                return Err(self.err("expected ':' after object key"));
            }
            self.ws()?;
            let child = format!("{path}/{}", escape_pointer(&key));
            let v = self.value(child, depth + 1)?;
            m.insert(key, v);
            self.ws()?;
            match self.peek() {
                Some(b',') => {
                    self.bump();
                }
                Some(b'}') => {}
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, path: String, depth: usize) -> Result<Value, SyntaxError> {
        self.bump();
        let mut a = Vec::new();
        loop {
            self.ws()?;
            if self.peek() == Some(b']') {
                self.bump();
                return Ok(Value::Array(a));
            }
            let child = format!("{path}/{}", a.len());
            a.push(self.value(child, depth + 1)?);
            self.ws()?;
            match self.peek() {
                Some(b',') => {
                    self.bump();
                }
                Some(b']') => {}
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }
}

/// RFC 6901 escaping of one pointer segment.
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas() {
        let (v, pos) =
            parse("// top\n{\n  \"a\": [1, 2,], /* c */\n  \"b\": {\"c\": \"x\",},\n}\n")
                .expect("parses");
        assert_eq!(v, serde_json::json!({"a": [1, 2], "b": {"c": "x"}}));
        assert_eq!(pos["/a"], (3, 8));
        assert_eq!(pos["/a/1"], (3, 12));
        assert_eq!(pos["/b/c"], (4, 14));
    }

    #[test]
    fn errors_carry_position() {
        let e = parse("{\n  \"a\": [1 2]\n}").unwrap_err();
        assert_eq!((e.line, e.col), (2, 11));
        let e = parse("{\"a\": 1, \"a\": 2}").unwrap_err();
        assert!(e.msg.contains("duplicate key"));
        assert!(parse("{\"a\": 1 /* open").is_err());
        assert!(parse("[").is_err());
        assert!(parse("{} x").is_err());
    }

    #[test]
    fn escapes_and_unicode() {
        let (v, _) = parse(r#"["a\"b\\\n", "\u00e9\ud83d\ude00", "ü"]"#).unwrap();
        assert_eq!(v, serde_json::json!(["a\"b\\\n", "é😀", "ü"]));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = "[".repeat(10_000);
        assert!(parse(&s).is_err());
    }

    #[test]
    fn never_panics_on_arbitrary_prefixes() {
        let src = "{\"a\": [1, {\"b\": \"c\\u12\"}], // x\n \"d\": -1.5e3, /* */ }";
        for i in 0..src.len() {
            if src.is_char_boundary(i) {
                let _ = parse(&src[..i]);
            }
        }
    }
}
