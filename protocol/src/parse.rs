//! The strict cursor that every typed view reads its frame body through, and the error it
//! reports.
//!
//! A view is handed exactly one frame body (the bytes after the 5-byte header, as delimited by
//! [`crate::frame`]), so it physically cannot read past the message's declared length; this
//! module makes sure it does not *panic* trying either. Every read checks the bytes left
//! first and turns a shortfall into a [`ParseError`] that names the message, the field and
//! the numbers involved ("Bind: parameter 3 length 200 exceeds message (12 bytes left)"),
//! which is what the proxy puts in the 08P01 ErrorResponse it answers malformed input with.
//! Parsing is strict in both directions: a missing byte is an error, and so is a byte left
//! over after the last field.

use std::fmt;

/// Which field of a message a [`ParseError`] is about: a name, and for repeated fields the
/// 1-based position (so "parameter 3" is `$3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub index: Option<usize>,
}

impl Field {
    /// A field that occurs once in its message.
    pub const fn named(name: &'static str) -> Self {
        Self { name, index: None }
    }

    /// The `index`-th (1-based) occurrence of a repeated field.
    pub const fn nth(name: &'static str, index: usize) -> Self {
        Self {
            name,
            index: Some(index),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{} {}", self.name, i),
            None => f.write_str(self.name),
        }
    }
}

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A fixed-size field did not fit in what was left of the body.
    #[error("{field} needs {needed} bytes ({left} bytes left)")]
    Truncated {
        field: Field,
        needed: usize,
        left: usize,
    },
    /// A string ran to the end of the body without its NUL terminator.
    #[error("{field} is missing its NUL terminator")]
    Unterminated { field: Field },
    /// A string that switchyard reads as text is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 { field: Field },
    /// A length-prefixed value claims more bytes than the body has left.
    #[error("{field} length {len} exceeds message ({left} bytes left)")]
    LengthExceeds { field: Field, len: i32, left: usize },
    /// A field holds a value the protocol does not allow there (a length below -1, a
    /// Describe kind other than `S`/`P`, an unknown transaction status, ...).
    #[error("{field} has invalid value {value}")]
    Invalid { field: Field, value: i64 },
    /// A field the protocol says is always present is not there.
    #[error("{field} is missing")]
    Missing { field: Field },
    /// Bytes left over after the last field.
    #[error("{count} unexpected bytes after the last field")]
    Trailing { count: usize },
}

/// A malformed message: which message, and what was wrong with it. Its display text is
/// meant for the peer that sent it and for the log; it never contains message contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {problem}")]
pub struct ParseError {
    /// The message type, as the protocol documentation names it ("Bind", "DataRow").
    pub message: &'static str,
    pub problem: Problem,
}

/// A forward-only cursor over one message body. Every read is bounds-checked; nothing
/// here indexes a slice without having checked its length first.
pub(crate) struct Reader<'a> {
    message: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(message: &'static str, body: &'a [u8]) -> Self {
        Self { message, buf: body }
    }

    pub(crate) fn error(&self, problem: Problem) -> ParseError {
        ParseError {
            message: self.message,
            problem,
        }
    }

    /// What is left of the body, without consuming it; with [`Reader::since`] this lets a
    /// view keep the raw bytes of a region it has validated.
    pub(crate) fn mark(&self) -> &'a [u8] {
        self.buf
    }

    /// The bytes consumed since `mark` was taken.
    pub(crate) fn since(&self, mark: &'a [u8]) -> &'a [u8] {
        let consumed = mark.len().saturating_sub(self.buf.len());
        mark.get(..consumed).unwrap_or_default()
    }

    pub(crate) fn take(&mut self, n: usize, field: Field) -> Result<&'a [u8], ParseError> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(self.error(Problem::Truncated {
                field,
                needed: n,
                left: self.buf.len(),
            })),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], ParseError> {
        let bytes = self.take(N, field)?;
        // `take` returned exactly N bytes, so this conversion cannot fail; mapping the
        // impossible case to an error keeps the code free of panics all the same.
        bytes.try_into().map_err(|_| {
            self.error(Problem::Truncated {
                field,
                needed: N,
                left: bytes.len(),
            })
        })
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn i16(&mut self, field: Field) -> Result<i16, ParseError> {
        self.array(field).map(i16::from_be_bytes)
    }

    /// A 16-bit count. PostgreSQL reads these with `pq_getmsgint(msg, 2)`, which is
    /// unsigned, so counts go up to 65535.
    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, ParseError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, field: Field) -> Result<i32, ParseError> {
        self.array(field).map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, ParseError> {
        self.array(field).map(u32::from_be_bytes)
    }

    /// A NUL-terminated string as bytes, without the terminator.
    pub(crate) fn cstr_bytes(&mut self, field: Field) -> Result<&'a [u8], ParseError> {
        let nul = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.error(Problem::Unterminated { field }))?;
        let s = self.take(nul, field)?;
        self.take(1, field)?;
        Ok(s)
    }

    /// A NUL-terminated string that must be UTF-8.
    pub(crate) fn cstr(&mut self, field: Field) -> Result<&'a str, ParseError> {
        let bytes = self.cstr_bytes(field)?;
        std::str::from_utf8(bytes).map_err(|_| self.error(Problem::NotUtf8 { field }))
    }

    /// An `i32` length followed by that many bytes; length -1 is SQL NULL (`None`).
    pub(crate) fn nullable(&mut self, field: Field) -> Result<Option<&'a [u8]>, ParseError> {
        let len = self.i32(field)?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(n) = usize::try_from(len) else {
            return Err(self.error(Problem::Invalid {
                field,
                value: i64::from(len),
            }));
        };
        if n > self.buf.len() {
            return Err(self.error(Problem::LengthExceeds {
                field,
                len,
                left: self.buf.len(),
            }));
        }
        self.take(n, field).map(Some)
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Succeeds only if the whole body has been read.
    pub(crate) fn finish(self) -> Result<(), ParseError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.error(Problem::Trailing {
                count: self.buf.len(),
            }))
        }
    }
}

/// Format codes (`Int16[n]`) as a lazily decoded iterator over the raw, already validated
/// bytes of the array.
#[derive(Debug, Clone)]
pub struct Formats<'a>(std::slice::ChunksExact<'a, u8>);

impl<'a> Formats<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Self(raw.chunks_exact(2))
    }
}

impl Iterator for Formats<'_> {
    type Item = i16;

    fn next(&mut self) -> Option<i16> {
        match *self.0.next()? {
            [a, b] => Some(i16::from_be_bytes([a, b])),
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Formats<'_> {}

/// Object IDs (`Int32[n]`, e.g. Parse's parameter types) over the raw, validated bytes.
#[derive(Debug, Clone)]
pub struct Oids<'a>(std::slice::ChunksExact<'a, u8>);

impl<'a> Oids<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Self(raw.chunks_exact(4))
    }
}

impl Iterator for Oids<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match *self.0.next()? {
            [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Oids<'_> {}

/// Length-prefixed values (`Int32 len, Byte[len]`, -1 = NULL), as in Bind parameters,
/// FunctionCall arguments and DataRow columns. Built only over a region the view's parser
/// has already walked, so iteration cannot fail; if it somehow could, it would stop rather
/// than panic.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    raw: &'a [u8],
    remaining: usize,
}

impl<'a> Values<'a> {
    pub(crate) fn new(raw: &'a [u8], count: usize) -> Self {
        Self {
            raw,
            remaining: count,
        }
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let mut r = Reader::new("", self.raw);
        match r.nullable(Field::named("")) {
            Ok(v) => {
                self.raw = r.rest();
                self.remaining -= 1;
                Some(v)
            }
            Err(_) => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Values<'_> {}

/// Reads `count` length-prefixed values and returns the raw region they occupy.
pub(crate) fn read_values<'a>(
    r: &mut Reader<'a>,
    count: usize,
    name: &'static str,
) -> Result<&'a [u8], ParseError> {
    let mark = r.mark();
    for i in 0..count {
        r.nullable(Field::nth(name, i + 1))?;
    }
    Ok(r.since(mark))
}

/// Reads a `u16` count of fixed-size items, then the items' raw bytes.
pub(crate) fn read_array<'a>(
    r: &mut Reader<'a>,
    item_size: usize,
    count_field: Field,
    items_field: Field,
) -> Result<&'a [u8], ParseError> {
    let count = usize::from(r.u16(count_field)?);
    r.take(count * item_size, items_field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_names_message_field_and_numbers() {
        let mut body = 200i32.to_be_bytes().to_vec();
        body.extend_from_slice(&[0; 12]);
        let mut r = Reader::new("Bind", &body);
        let err = r.nullable(Field::nth("parameter", 3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind: parameter 3 length 200 exceeds message (12 bytes left)"
        );
    }

    #[test]
    fn reads_refuse_to_run_past_the_body() {
        let mut r = Reader::new("X", &[0, 1, 2]);
        assert!(matches!(
            r.i32(Field::named("n")).unwrap_err().problem,
            Problem::Truncated {
                needed: 4,
                left: 3,
                ..
            }
        ));
        assert_eq!(r.i16(Field::named("n")).unwrap(), 1);
        assert!(r.cstr(Field::named("s")).is_err(), "no NUL left");
        assert_eq!(
            r.finish().unwrap_err().problem,
            Problem::Trailing { count: 1 }
        );
    }

    #[test]
    fn nullable_distinguishes_null_empty_and_invalid_lengths() {
        let mut body = (-1i32).to_be_bytes().to_vec();
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&(-2i32).to_be_bytes());
        let mut r = Reader::new("X", &body);
        assert_eq!(r.nullable(Field::named("v")).unwrap(), None);
        assert_eq!(r.nullable(Field::named("v")).unwrap(), Some(&b""[..]));
        assert_eq!(
            r.nullable(Field::named("v")).unwrap_err().problem,
            Problem::Invalid {
                field: Field::named("v"),
                value: -2
            }
        );
    }
}
