//! The primitives of the hand-written format: LEB128 varints, zigzag for signed integers,
//! length-prefixed bytes. Every length read is checked against the bytes left before anything
//! is allocated, so a hostile body costs no more memory than its own size.

use super::DecodeError;

pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn with_capacity(n: usize) -> Writer {
        Writer(Vec::with_capacity(n))
    }

    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub fn count(&mut self, n: usize) {
        self.varint(n as u64);
    }

    pub fn i64(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.count(b.len());
        self.0.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.left() {
            return Err(DecodeError::Truncated { at: self.at });
        }
        let out = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.at;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::VarintOverflow { at: start });
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow { at: start })
    }

    /// A count of items that each take at least one byte: never more than the bytes left, so a
    /// `Vec::with_capacity` of it is bounded by the input.
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let at = self.at;
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.left())
            .ok_or(DecodeError::Truncated { at })
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(f64::from_bits(u64::from_le_bytes(b)))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.count()?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.at;
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| DecodeError::Utf8 { at })
    }

    pub fn at(&self) -> usize {
        self.at
    }

    /// Everything was read: a record with bytes after its end is not one this code wrote.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.left() == 0 {
            Ok(())
        } else {
            Err(DecodeError::Trailing { at: self.at })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_at_their_edges() {
        let ints = [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN];
        let uints = [0, 127, 128, 16_383, 16_384, u64::MAX];
        let mut w = Writer::with_capacity(0);
        ints.iter().for_each(|v| w.i64(*v));
        uints.iter().for_each(|v| w.varint(*v));
        let mut r = Reader::new(&w.0);
        for v in ints {
            assert_eq!(r.i64().unwrap(), v);
        }
        for v in uints {
            assert_eq!(r.varint().unwrap(), v);
        }
        r.finish().unwrap();
    }

    #[test]
    fn a_varint_past_64_bits_is_refused() {
        let mut r = Reader::new(&[0xff; 10]);
        assert!(matches!(
            r.varint(),
            Err(DecodeError::VarintOverflow { .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert!(matches!(
            r.varint(),
            Err(DecodeError::VarintOverflow { .. })
        ));
    }

    #[test]
    fn a_count_larger_than_the_input_is_refused_before_allocating() {
        let mut w = Writer::with_capacity(0);
        w.varint(1 << 40);
        assert!(matches!(
            Reader::new(&w.0).count(),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
