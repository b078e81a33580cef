//! The byte layout of Automerge chunks, read without Automerge: enough to refuse what must
//! never reach it (a chunk of the wrong kind, a change claiming billions of operations).
//!
//! A chunk is `magic (4) | checksum (4) | type (1) | ULEB128 length | data`. A change's data
//! is `deps | actor | seq | start op | time | message | other actors | columns | extra`,
//! where the columns are described by `count | (spec, length)*` and then follow end to
//! end. The number of operations is the number of values in the action column (column id
//! 4, integer RLE): Automerge's op iterator ends when that column does.

/// The leading bytes of every Automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk type of an uncompressed change.
pub(super) const CHANGE_CHUNK: u8 = 1;
/// Column spec of a change's action column: id 4, type integer (2), not deflated.
const ACTION_COLUMN: u64 = (4 << 4) | 2;
/// Bit of a column spec that marks a deflated column.
const DEFLATE_BIT: u64 = 1 << 3;

/// The type and total length (header included) of the chunk at the start of `bytes`.
pub(super) fn chunk_len(bytes: &[u8]) -> Result<(u8, usize), &'static str> {
    // magic (4) + checksum (4) + type (1) + ULEB128 length of the data.
    if bytes.len() < 10 || bytes[..4] != MAGIC {
        return Err("is not an Automerge chunk");
    }
    let kind = bytes[8];
    let (data_len, leb_len) = uleb128(&bytes[9..]).ok_or("has a broken length")?;
    let total = usize::try_from(data_len)
        .ok()
        .and_then(|n| n.checked_add(9 + leb_len))
        .ok_or("has a length beyond any frame")?;
    Ok((kind, total))
}

/// Reads an unsigned LEB128 number of at most 64 bits: (value, bytes read).
pub(super) fn uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        let part = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && part > 1 {
            return None;
        }
        value |= part << shift;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads a signed LEB128 number of at most 64 bits: (value, bytes read).
fn sleb128(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut value: i64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        let shift = 7 * i as u32;
        value |= i64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            if shift + 7 < 64 && byte & 0x40 != 0 {
                value |= -1i64 << (shift + 7);
            }
            return Some((value, i + 1));
        }
    }
    None
}

/// A cursor over bytes that fails with a reason instead of reading past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

const BROKEN: &str = "has a broken change header";

impl<'a> Reader<'a> {
    fn uleb(&mut self) -> Result<u64, &'static str> {
        let (v, n) = uleb128(self.bytes).ok_or(BROKEN)?;
        self.bytes = &self.bytes[n..];
        Ok(v)
    }

    fn sleb(&mut self) -> Result<i64, &'static str> {
        let (v, n) = sleb128(self.bytes).ok_or(BROKEN)?;
        self.bytes = &self.bytes[n..];
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> Result<(), &'static str> {
        let n = usize::try_from(n).map_err(|_| BROKEN)?;
        self.bytes = self.bytes.get(n..).ok_or(BROKEN)?;
        Ok(())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], &'static str> {
        let n = usize::try_from(n).map_err(|_| BROKEN)?;
        let (head, rest) = (self.bytes.get(..n).ok_or(BROKEN)?, &self.bytes[n..]);
        self.bytes = rest;
        Ok(head)
    }
}

/// The number of operations a change chunk holds, summed from its action column's run
/// lengths (saturating), without decoding the operations.
pub(super) fn count_ops(chunk: &[u8]) -> Result<u64, &'static str> {
    let (_, leb_len) = uleb128(chunk.get(9..).ok_or(BROKEN)?).ok_or(BROKEN)?;
    let mut r = Reader {
        bytes: &chunk[9 + leb_len..],
    };
    let deps = r.uleb()?;
    r.skip(deps.checked_mul(32).ok_or(BROKEN)?)?; // dependency hashes
    let actor = r.uleb()?;
    r.skip(actor)?;
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.sleb()?; // time
    let message = r.uleb()?;
    r.skip(message)?;
    let others = r.uleb()?;
    for _ in 0..others {
        let len = r.uleb()?;
        r.skip(len)?;
    }
    let columns = r.uleb()?;
    let mut action = None;
    let mut offset: u64 = 0;
    for _ in 0..columns {
        let spec = r.uleb()?;
        let len = r.uleb()?;
        if spec & DEFLATE_BIT != 0 {
            return Err("has a deflated column");
        }
        if spec == ACTION_COLUMN {
            action = Some((offset, len));
        }
        offset = offset.checked_add(len).ok_or(BROKEN)?;
    }
    let Some((start, len)) = action else {
        return Ok(0);
    };
    r.skip(start)?;
    let mut column = Reader {
        bytes: r.take(len)?,
    };
    let mut ops: u64 = 0;
    while !column.bytes.is_empty() {
        let count = column.sleb()?;
        let run = match count {
            c if c > 0 => {
                column.uleb()?; // the repeated value
                c.unsigned_abs()
            }
            c if c < 0 => {
                let n = c.unsigned_abs();
                for _ in 0..n.min(column.bytes.len() as u64 + 1) {
                    column.uleb()?;
                }
                n
            }
            _ => column.uleb()?, // a run of nulls
        };
        ops = ops.saturating_add(run);
    }
    Ok(ops)
}

/// Test helper: `chunk` (a change with one op) with its action column replaced by one run
/// of `count` copies of its action, lengths and checksum fixed up.
#[cfg(test)]
pub(super) fn with_action_run(chunk: &[u8], count: i64) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let (_, leb_len) = uleb128(&chunk[9..]).unwrap();
    let body = &chunk[9 + leb_len..];
    let mut r = Reader { bytes: body };
    let deps = r.uleb().unwrap();
    r.skip(deps * 32).unwrap();
    let actor = r.uleb().unwrap();
    r.skip(actor).unwrap();
    r.uleb().unwrap();
    r.uleb().unwrap();
    r.sleb().unwrap();
    let message = r.uleb().unwrap();
    r.skip(message).unwrap();
    let others = r.uleb().unwrap();
    for _ in 0..others {
        let len = r.uleb().unwrap();
        r.skip(len).unwrap();
    }
    let prefix = &body[..body.len() - r.bytes.len()];
    let columns = r.uleb().unwrap();
    let specs: Vec<(u64, u64)> = (0..columns)
        .map(|_| (r.uleb().unwrap(), r.uleb().unwrap()))
        .collect();
    let mut data = r.bytes;
    let mut out_specs = Vec::new();
    let mut out_data = Vec::new();
    for (spec, len) in specs {
        let (col, rest) = data.split_at(len as usize);
        data = rest;
        if spec == ACTION_COLUMN {
            // The one value of a literal run of one: [-1, value].
            let mut cr = Reader { bytes: col };
            let first = cr.sleb().unwrap();
            let value = if first == -1 || first == 1 {
                cr.uleb().unwrap()
            } else {
                panic!("{first}")
            };
            let mut new = Vec::new();
            write_sleb(&mut new, count);
            write_uleb(&mut new, value);
            out_specs.push((spec, new.len() as u64));
            out_data.extend(new);
        } else {
            out_specs.push((spec, len));
            out_data.extend_from_slice(col);
        }
    }
    let mut new_body = prefix.to_vec();
    write_uleb(&mut new_body, out_specs.len() as u64);
    for (spec, len) in out_specs {
        write_uleb(&mut new_body, spec);
        write_uleb(&mut new_body, len);
    }
    new_body.extend(out_data);
    new_body.extend_from_slice(data); // extra bytes
    let mut hashed = vec![CHANGE_CHUNK];
    write_uleb(&mut hashed, new_body.len() as u64);
    hashed.extend(&new_body);
    let checksum = Sha256::digest(&hashed);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&checksum[..4]);
    out.extend(hashed);
    out
}

#[cfg(test)]
fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
fn write_sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_reads_and_refuses_overflow() {
        assert_eq!(uleb128(&[0xe5, 0x8e, 0x26]), Some((624_485, 3)));
        assert_eq!(uleb128(&[0xff; 11]), None);
        assert_eq!(uleb128(&[0x80]), None);
        assert_eq!(sleb128(&[0x7f]), Some((-1, 1)));
        assert_eq!(sleb128(&[0xc0, 0xbb, 0x78]), Some((-123_456, 3)));
        let mut out = Vec::new();
        write_sleb(&mut out, -123_456);
        assert_eq!(out, [0xc0, 0xbb, 0x78]);
    }
}
