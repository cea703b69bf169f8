//! What one device change may cost the server, checked before anything is applied or stored.
//!
//! Automerge compresses what repeats, so a small frame can carry a huge change: 390 KB of
//! DEFLATE inflated to a 400 MB string, which automerge would inflate in full, keep in memory,
//! store and hand to every later reader. The chunks of a sync message are therefore measured
//! here first, inflating compressed parts through a bounded reader that stops one byte past the
//! limit; only then does automerge see them, and the changes it parses are checked for ops per
//! change and string length. Pure functions: no IO, no state.
//!
//! The chunk layout follows automerge's binary format: a chunk is `magic (4) | checksum (4) |
//! type (1) | uLEB length | data`; type 0 is a whole document (whose columns may be deflated one
//! by one), 1 a change, 2 a deflated change, 3 a bundle (not used by the sync protocol).

use std::io::Read;

use automerge::{Change, ScalarValue};

/// Limits on what one device may send; every field is settable from the environment (see
/// `Config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// One change, inflated.
    pub max_change_bytes: usize,
    /// One string or byte value in a change.
    pub max_string_bytes: usize,
    /// Operations in one change (a pasted text is one op per character).
    pub max_ops_per_change: usize,
    /// A whole document, inflated: a document chunk in a sync message, or the stored document
    /// plus what a message adds.
    pub max_doc_bytes: usize,
}

impl Default for Limits {
    /// A job-sized document saves to a few KiB and a busy day's change to a few hundred bytes;
    /// these leave two to three orders of magnitude of room.
    fn default() -> Limits {
        Limits {
            max_change_bytes: 1024 * 1024,
            max_string_bytes: 64 * 1024,
            max_ops_per_change: 100_000,
            max_doc_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("a change inflates to more than {limit} bytes")]
    ChangeTooLarge { limit: usize },
    #[error("the document would exceed {limit} bytes")]
    DocTooLarge { limit: usize },
    #[error("a change has {ops} operations; at most {limit} are accepted")]
    TooManyOps { ops: usize, limit: usize },
    #[error("a value of {len} bytes; at most {limit} are accepted")]
    StringTooLong { len: usize, limit: usize },
    #[error("not an Automerge chunk: {0}")]
    Malformed(&'static str),
    #[error("bundle chunks are not accepted over sync")]
    Bundle,
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Measure the chunks of one sync message: returns the bytes they inflate to, or why they may
/// not be applied. `doc_bytes` is what the stored document already weighs.
pub fn measure_chunks<'a>(
    chunks: impl Iterator<Item = &'a [u8]>,
    doc_bytes: usize,
    limits: &Limits,
) -> Result<usize, Exceeded> {
    let mut total = 0usize;
    for entry in chunks {
        let mut rest = entry;
        while !rest.is_empty() {
            let (ty, data, after) = split_chunk(rest)?;
            rest = after;
            let size = match ty {
                0 => document_size(data, limits.max_doc_bytes)?,
                1 => data.len(),
                2 => {
                    inflated_len(data, limits.max_change_bytes).ok_or(Exceeded::ChangeTooLarge {
                        limit: limits.max_change_bytes,
                    })?
                }
                3 => return Err(Exceeded::Bundle),
                _ => return Err(Exceeded::Malformed("unknown chunk type")),
            };
            if ty != 0 && size > limits.max_change_bytes {
                return Err(Exceeded::ChangeTooLarge {
                    limit: limits.max_change_bytes,
                });
            }
            total = total.saturating_add(size);
            if ty != 0 && doc_bytes.saturating_add(total) > limits.max_doc_bytes {
                return Err(Exceeded::DocTooLarge {
                    limit: limits.max_doc_bytes,
                });
            }
        }
    }
    Ok(total)
}

/// Check changes (already parsed, so already known to be within the size bounds) for their
/// operation count and the length of every value they write.
pub fn check_changes<'a>(
    changes: impl Iterator<Item = &'a Change>,
    limits: &Limits,
) -> Result<(), Exceeded> {
    for change in changes {
        if change.len() > limits.max_ops_per_change {
            return Err(Exceeded::TooManyOps {
                ops: change.len(),
                limit: limits.max_ops_per_change,
            });
        }
        for op in change.decode().operations {
            let len = match op.primitive_value() {
                Some(ScalarValue::Str(s)) => s.len(),
                Some(ScalarValue::Bytes(b)) => b.len(),
                _ => 0,
            };
            if len > limits.max_string_bytes {
                return Err(Exceeded::StringTooLong {
                    len,
                    limit: limits.max_string_bytes,
                });
            }
        }
    }
    Ok(())
}

/// `(type, data, rest)` of the chunk at the start of `bytes`.
fn split_chunk(bytes: &[u8]) -> Result<(u8, &[u8], &[u8]), Exceeded> {
    if bytes.len() < 9 || bytes[..4] != MAGIC {
        return Err(Exceeded::Malformed("bad chunk header"));
    }
    let ty = bytes[8];
    let (len, used) = uleb(&bytes[9..]).ok_or(Exceeded::Malformed("bad chunk length"))?;
    let start = 9 + used;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|e| *e <= bytes.len())
        .ok_or(Exceeded::Malformed("chunk longer than its message"))?;
    Ok((ty, &bytes[start..end], &bytes[end..]))
}

/// The inflated size of a document chunk's data: its header as is, each column inflated if it is
/// deflated (bit 3 of the column spec), each measured against what is left of `limit`.
fn document_size(data: &[u8], limit: usize) -> Result<usize, Exceeded> {
    let malformed = || Exceeded::Malformed("bad document chunk");
    let mut r = Reader(data);
    let actors = r.uleb().ok_or_else(malformed)?;
    for _ in 0..actors {
        let n = r.uleb().ok_or_else(malformed)?;
        r.skip(n).ok_or_else(malformed)?;
    }
    let heads = r.uleb().ok_or_else(malformed)?;
    r.skip(heads.checked_mul(32).ok_or_else(malformed)?)
        .ok_or_else(malformed)?;
    let mut columns = Vec::new();
    for _ in 0..2 {
        let n = r.uleb().ok_or_else(malformed)?;
        for _ in 0..n {
            let spec = r.uleb().ok_or_else(malformed)?;
            let len = r.uleb().ok_or_else(malformed)?;
            columns.push((spec & 0b1000 != 0, len));
        }
    }
    let too_large = Exceeded::DocTooLarge { limit };
    let mut total = data.len() - r.0.len();
    for (deflated, len) in columns {
        let bytes = r.take(len).ok_or_else(malformed)?;
        let left = limit.saturating_sub(total);
        total += if deflated {
            inflated_len(bytes, left).ok_or(too_large.clone())?
        } else {
            bytes.len()
        };
        if total > limit {
            return Err(too_large);
        }
    }
    Ok(total + r.0.len())
}

/// The length `deflated` inflates to, or `None` when it is more than `limit` or not DEFLATE.
/// Reads at most `limit + 1` inflated bytes, into a small buffer.
fn inflated_len(deflated: &[u8], limit: usize) -> Option<usize> {
    let mut decoder = flate2::read::DeflateDecoder::new(deflated).take(limit as u64 + 1);
    let n = std::io::copy(&mut decoder, &mut std::io::sink()).ok()?;
    usize::try_from(n).ok().filter(|n| *n <= limit)
}

fn uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn uleb(&mut self) -> Option<u64> {
        let (v, n) = uleb(self.0)?;
        self.0 = &self.0[n..];
        Some(v)
    }
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok().filter(|n| *n <= self.0.len())?;
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn skip(&mut self, n: u64) -> Option<()> {
        self.take(n).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ROOT};

    fn limits() -> Limits {
        Limits {
            max_change_bytes: 64 * 1024,
            max_string_bytes: 1024,
            max_ops_per_change: 500,
            max_doc_bytes: 256 * 1024,
        }
    }

    /// A document whose one change writes a `len`-byte string of one repeated letter: tiny once
    /// compressed.
    fn doc_with_string(len: usize) -> AutoCommit {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "title", "x".repeat(len)).unwrap();
        doc.commit();
        doc
    }

    #[test]
    fn small_changes_and_documents_pass() {
        let mut doc = doc_with_string(100);
        let change = doc.get_changes(&[])[0].clone();
        let saved = doc.save();
        let n = measure_chunks([change.raw_bytes(), &saved[..]].into_iter(), 0, &limits()).unwrap();
        assert!(n >= change.raw_bytes().len());
        check_changes([&change].into_iter(), &limits()).unwrap();
    }

    #[test]
    fn a_compressed_bomb_is_refused_without_inflating_it() {
        // 8 MB of one letter compresses to a few KB, in a change and in a saved document.
        let mut doc = doc_with_string(8 * 1024 * 1024);
        let mut change = doc.get_changes(&[])[0].clone();
        let compressed = change.bytes().into_owned();
        assert!(compressed.len() < 64 * 1024, "{}", compressed.len());
        assert_eq!(
            measure_chunks([&compressed[..]].into_iter(), 0, &limits()),
            Err(Exceeded::ChangeTooLarge { limit: 64 * 1024 })
        );
        let saved = doc.save();
        assert!(saved.len() < 64 * 1024);
        assert_eq!(
            measure_chunks([&saved[..]].into_iter(), 0, &limits()),
            Err(Exceeded::DocTooLarge { limit: 256 * 1024 })
        );
    }

    #[test]
    fn long_strings_and_many_ops_are_refused() {
        let mut doc = doc_with_string(2000);
        let change = doc.get_changes(&[])[0].clone();
        assert_eq!(
            check_changes([&change].into_iter(), &limits()),
            Err(Exceeded::StringTooLong {
                len: 2000,
                limit: 1024
            })
        );
        let mut doc = AutoCommit::new();
        let list = doc.put_object(ROOT, "l", ObjType::List).unwrap();
        for i in 0..600 {
            doc.insert(&list, i, 1).unwrap();
        }
        doc.commit();
        let change = doc.get_changes(&[])[0].clone();
        assert!(matches!(
            check_changes([&change].into_iter(), &limits()),
            Err(Exceeded::TooManyOps { ops: 601, .. })
        ));
    }

    #[test]
    fn what_the_document_already_weighs_counts() {
        let mut doc = doc_with_string(100);
        let change = doc.get_changes(&[])[0].clone();
        assert!(matches!(
            measure_chunks([change.raw_bytes()].into_iter(), 256 * 1024, &limits()),
            Err(Exceeded::DocTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x85\x6f\x4a\x83",
            b"\x85\x6f\x4a\x83\0\0\0\0\x00\xff\xff",
            b"hello world!",
        ] {
            if !bad.is_empty() {
                assert!(matches!(
                    measure_chunks([bad].into_iter(), 0, &limits()),
                    Err(Exceeded::Malformed(_))
                ));
            }
        }
    }
}
