//! A strict JSON reader for the direct transcoder: it reads only what RFC 8259 allows and
//! answers [`Fallback`] at anything else, leaving the exact error (with its line and column) to
//! serde_json on the DynamicMessage path.

use std::borrow::Cow;

/// The direct transcoder cannot vouch for this input; DynamicMessage decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fallback;

/// A result of the direct transcoder.
pub(super) type Fast<T> = Result<T, Fallback>;

/// A JSON number as written, with whether it is an integer literal (no fraction, no exponent).
#[derive(Debug, Clone, Copy)]
pub(super) struct Number<'a> {
    pub(super) text: &'a str,
    pub(super) integer: bool,
}

/// An integer literal's value, as serde_json reads it: non-negative ones as u64, negative
/// ones as i64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Integer {
    Positive(u64),
    Negative(i64),
}

impl Number<'_> {
    /// The literal's value, when it is an integer serde_json reads as one (not `-0`, not
    /// beyond 64 bits, which it reads as a float).
    #[inline]
    pub(super) fn integer(&self) -> Fast<Integer> {
        if !self.integer {
            return Err(Fallback);
        }
        if let Some(digits) = self.text.strip_prefix('-') {
            if digits == "0" {
                return Err(Fallback);
            }
            return self.text.parse::<i64>().map(Integer::Negative).map_err(|_| Fallback);
        }
        self.text.parse::<u64>().map(Integer::Positive).map_err(|_| Fallback)
    }

    /// The literal as a double, correctly rounded (serde_json's `float_roundtrip` agrees).
    /// Literals that overflow, or that underflow to zero or a subnormal, are left to serde_json.
    #[inline]
    pub(super) fn double(&self) -> Fast<f64> {
        if let Ok(integer) = self.integer() {
            return Ok(match integer {
                Integer::Positive(value) => value as f64,
                Integer::Negative(value) => value as f64,
            });
        }
        let value: f64 = self.text.parse().map_err(|_| Fallback)?;
        if value.is_normal() || (value == 0.0 && !self.has_nonzero_digit()) { Ok(value) } else { Err(Fallback) }
    }

    fn has_nonzero_digit(&self) -> bool {
        let mantissa = self.text.split(['e', 'E']).next().unwrap_or(self.text);
        mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'))
    }
}

/// A cursor over a JSON document.
pub(super) struct Reader<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(json: &'a [u8]) -> Reader<'a> {
        Reader { json, at: 0 }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.json.get(self.at) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    /// Consumes `byte` (after whitespace), or falls back.
    #[inline]
    pub(super) fn eat(&mut self, byte: u8) -> Fast<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// After a member or element: true at `,`, false at `close`, both consumed.
    #[inline]
    pub(super) fn more(&mut self, close: u8) -> Fast<bool> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(byte) if byte == close => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(Fallback),
        }
    }

    /// True at the end of the document (trailing whitespace allowed).
    pub(super) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Consumes the literal `word` (`true`, `false`, `null`).
    #[inline]
    pub(super) fn literal(&mut self, word: &[u8]) -> Fast<()> {
        self.peek();
        if self.json[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// `true` or `false`.
    #[inline]
    pub(super) fn boolean(&mut self) -> Fast<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(Fallback),
        }
    }

    /// A string's decoded text. Strings without escapes are borrowed from the document.
    #[inline]
    pub(super) fn string(&mut self) -> Fast<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.at;
        while let Some(&byte) = self.json.get(self.at) {
            match byte {
                b'"' => {
                    let raw = &self.json[start..self.at];
                    self.at += 1;
                    return std::str::from_utf8(raw).map(Cow::Borrowed).map_err(|_| Fallback);
                }
                b'\\' => return self.escaped(start),
                0..=0x1f => return Err(Fallback),
                _ => self.at += 1,
            }
        }
        Err(Fallback)
    }

    /// A string with escapes, decoded by serde_json so escapes mean exactly what they mean there.
    #[cold]
    fn escaped(&mut self, start: usize) -> Fast<Cow<'a, str>> {
        let mut at = self.at;
        while at < self.json.len() {
            match self.json[at] {
                b'"' => {
                    let quoted = &self.json[start - 1..=at];
                    let text: String = serde_json::from_slice(quoted).map_err(|_| Fallback)?;
                    self.at = at + 1;
                    return Ok(Cow::Owned(text));
                }
                b'\\' => at += 2,
                _ => at += 1,
            }
        }
        Err(Fallback)
    }

    /// A number, checked against JSON's number grammar.
    #[inline]
    pub(super) fn number(&mut self) -> Fast<Number<'a>> {
        self.peek();
        let json = self.json;
        let start = self.at;
        let mut at = start;
        let digit = |at: usize| json.get(at).is_some_and(u8::is_ascii_digit);
        if json.get(at) == Some(&b'-') {
            at += 1;
        }
        match json.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => {
                while digit(at) {
                    at += 1;
                }
            }
            _ => return Err(Fallback),
        }
        let mut integer = true;
        if json.get(at) == Some(&b'.') {
            at += 1;
            if !digit(at) {
                return Err(Fallback);
            }
            while digit(at) {
                at += 1;
            }
            integer = false;
        }
        if matches!(json.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(json.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            if !digit(at) {
                return Err(Fallback);
            }
            while digit(at) {
                at += 1;
            }
            integer = false;
        }
        self.at = at;
        let text = std::str::from_utf8(&json[start..at]).map_err(|_| Fallback)?;
        Ok(Number { text, integer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_json_grammar() {
        type Case<'a> = (&'a str, Option<(&'a str, bool)>);
        let table: &[Case] = &[
            ("0", Some(("0", true))),
            ("-12", Some(("-12", true))),
            ("1.5e-3,", Some(("1.5e-3", false))),
            ("2E+10}", Some(("2E+10", false))),
            ("-", None),
            ("+1", None),
            (".5", None),
            ("1.", None),
            ("1e", None),
            ("01", Some(("0", true))),
        ];
        for (input, want) in table {
            let got = Reader::new(input.as_bytes()).number().ok().map(|n| (n.text, n.integer));
            assert_eq!(got, *want, "{input}");
        }
    }

    #[test]
    fn integers_are_read_as_serde_json_reads_them() {
        let integer = |text: &str| Reader::new(text.as_bytes()).number().and_then(|n| n.integer());
        assert_eq!(integer("18446744073709551615"), Ok(Integer::Positive(u64::MAX)));
        assert_eq!(integer("-9223372036854775808"), Ok(Integer::Negative(i64::MIN)));
        assert_eq!(integer("18446744073709551616"), Err(Fallback));
        assert_eq!(integer("-0"), Err(Fallback));
        assert_eq!(integer("1.0"), Err(Fallback));
        let double = |text: &str| Reader::new(text.as_bytes()).number().and_then(|n| n.double());
        assert_eq!(double("0.1"), Ok(0.1));
        assert_eq!(double("0.0e5"), Ok(0.0));
        assert_eq!(double("1e400"), Err(Fallback));
        assert_eq!(double("1e-400"), Err(Fallback));
    }

    #[test]
    fn strings_borrow_unless_escaped_and_refuse_what_json_refuses() {
        fn string(text: &[u8]) -> Fast<Cow<'_, str>> {
            Reader::new(text).string()
        }
        assert!(matches!(string(br#""plain""#), Ok(Cow::Borrowed("plain"))));
        assert!(matches!(string(br#""a\u0062\n""#), Ok(Cow::Owned(s)) if s == "ab\n"));
        assert_eq!(string(b"\"tab\there\""), Err(Fallback));
        assert_eq!(string(b"\"\xff\""), Err(Fallback));
        assert_eq!(string(br#""\ud800""#), Err(Fallback));
        assert_eq!(string(br#""open"#), Err(Fallback));
    }
}
