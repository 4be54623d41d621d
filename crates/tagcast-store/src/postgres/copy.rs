//! Reading a whole table fast: `COPY (query) TO STDOUT (FORMAT binary)`, parsed here field by
//! field without building a row object per record. An index rebuild reads tens of millions of
//! rows; decoding them is most of its cost.
//!
//! The format (PostgreSQL's documentation, "COPY", binary format): a signature, flags and a
//! header extension; then per tuple an `i16` field count (-1 ends the data) and per field an
//! `i32` length (-1: NULL) and the value in its binary send format, big-endian.

use std::pin::pin;

use futures_util::StreamExt;

use super::connection::{STATEMENT_TIMEOUT, pg_error};
use super::tables::Db;
use crate::StoreError;
use crate::tables::Result;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Streams the tuples of `query` (a SELECT) into `visit`, one slice per field (None: NULL);
/// fails if PostgreSQL goes quiet for `STATEMENT_TIMEOUT` between two chunks.
pub(crate) fn each_tuple(
    db: Db<'_>,
    query: &str,
    mut visit: impl FnMut(&[Option<&[u8]>]) -> Result<()>,
) -> Result<()> {
    let sql = format!("COPY ({query}) TO STDOUT (FORMAT binary)");
    db.pg.run(async {
        let stream = quiet(db.client.copy_out(sql.as_str()))
            .await?
            .map_err(pg_error)?;
        let mut stream = pin!(stream);
        let mut reader = Reader::default();
        while let Some(chunk) = quiet(stream.next()).await? {
            reader.feed(&chunk.map_err(pg_error)?, &mut visit)?;
        }
        reader.finish()
    })
}

/// `future`'s output, or an error once it has taken `STATEMENT_TIMEOUT`.
pub(crate) async fn quiet<T>(future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(STATEMENT_TIMEOUT, future)
        .await
        .map_err(|_| {
            StoreError::Storage(format!(
                "PostgreSQL sent nothing for {} s during a scan",
                STATEMENT_TIMEOUT.as_secs()
            ))
        })
}

/// The parser's state across chunks: bytes of an unfinished tuple are kept for the next one.
#[derive(Default)]
struct Reader {
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
    fields: Vec<Option<(usize, usize)>>,
}

impl Reader {
    fn feed(
        &mut self,
        chunk: &[u8],
        visit: &mut impl FnMut(&[Option<&[u8]>]) -> Result<()>,
    ) -> Result<()> {
        self.pending.extend_from_slice(chunk);
        let mut at = 0;
        if !self.header_read {
            match header_len(&self.pending)? {
                Some(len) => {
                    at = len;
                    self.header_read = true;
                }
                None => return Ok(()),
            }
        }
        while !self.ended {
            match self.tuple_at(at)? {
                Tuple::Incomplete => break,
                Tuple::End(next) => {
                    self.ended = true;
                    at = next;
                }
                Tuple::Fields(next) => {
                    let buffer = &self.pending;
                    let fields: Vec<Option<&[u8]>> = self
                        .fields
                        .iter()
                        .map(|f| f.map(|(start, end)| &buffer[start..end]))
                        .collect();
                    visit(&fields)?;
                    at = next;
                }
            }
        }
        self.pending.drain(..at);
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if self.ended && self.pending.is_empty() {
            Ok(())
        } else {
            Err(corrupt("the COPY data ended in the middle"))
        }
    }

    /// The tuple starting at `at`, its fields' ranges kept in `self.fields`.
    fn tuple_at(&mut self, at: usize) -> Result<Tuple> {
        let buffer = &self.pending;
        let Some(count) = buffer.get(at..at + 2) else {
            return Ok(Tuple::Incomplete);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            return Ok(Tuple::End(at + 2));
        }
        let count = usize::try_from(count).map_err(|_| corrupt("a negative field count"))?;
        self.fields.clear();
        let mut at = at + 2;
        for _ in 0..count {
            let Some(len) = buffer.get(at..at + 4) else {
                return Ok(Tuple::Incomplete);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            at += 4;
            if len < 0 {
                self.fields.push(None);
                continue;
            }
            let end = at + len as usize;
            if end > buffer.len() {
                return Ok(Tuple::Incomplete);
            }
            self.fields.push(Some((at, end)));
            at = end;
        }
        Ok(Tuple::Fields(at))
    }
}

enum Tuple {
    Incomplete,
    Fields(usize),
    End(usize),
}

/// The length of the header at the start of `buffer`, or None if it is not all there yet.
fn header_len(buffer: &[u8]) -> Result<Option<usize>> {
    let fixed = SIGNATURE.len() + 8;
    if buffer.len() < fixed {
        return Ok(None);
    }
    if &buffer[..SIGNATURE.len()] != SIGNATURE {
        return Err(corrupt("not PostgreSQL's binary COPY format"));
    }
    let extension = &buffer[SIGNATURE.len() + 4..fixed];
    let extension = u32::from_be_bytes([extension[0], extension[1], extension[2], extension[3]]);
    let len = fixed + extension as usize;
    Ok((buffer.len() >= len).then_some(len))
}

fn corrupt(detail: &str) -> StoreError {
    StoreError::Storage(format!("PostgreSQL scan: {detail}"))
}

/// An `int8` field.
pub(crate) fn int8(field: Option<&[u8]>) -> Result<i64> {
    let bytes: [u8; 8] = field
        .and_then(|f| f.try_into().ok())
        .ok_or_else(|| corrupt("an int8 field is not 8 bytes"))?;
    Ok(i64::from_be_bytes(bytes))
}

/// An `int4` field.
pub(crate) fn int4(field: Option<&[u8]>) -> Result<i32> {
    let bytes: [u8; 4] = field
        .and_then(|f| f.try_into().ok())
        .ok_or_else(|| corrupt("an int4 field is not 4 bytes"))?;
    Ok(i32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary COPY stream of `tuples` (fields as bytes, None for NULL).
    fn stream(tuples: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&4u32.to_be_bytes());
        out.extend_from_slice(b"xtra");
        for tuple in tuples {
            out.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
            for field in tuple {
                match field {
                    Some(bytes) => {
                        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(bytes);
                    }
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// A parsed test tuple: an int8, an int4 or NULL, some bytes.
    type Parsed = (i64, Option<i32>, Vec<u8>);

    /// Parses `bytes` fed in chunks of `size`.
    fn parse(bytes: &[u8], size: usize) -> Result<Vec<Parsed>> {
        let mut reader = Reader::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(size) {
            reader.feed(chunk, &mut |fields| {
                out.push((
                    int8(fields[0])?,
                    fields[1].map(|_| int4(fields[1])).transpose()?,
                    fields[2].unwrap_or_default().to_vec(),
                ));
                Ok(())
            })?;
        }
        reader.finish()?;
        Ok(out)
    }

    #[test]
    fn tuples_split_anywhere_across_chunks_parse_the_same() {
        let tuples = vec![
            vec![
                Some(7i64.to_be_bytes().to_vec()),
                Some(3i32.to_be_bytes().to_vec()),
                Some(vec![1, 2, 3]),
            ],
            vec![Some((-1i64).to_be_bytes().to_vec()), None, Some(vec![])],
        ];
        let bytes = stream(&tuples);
        let expected = vec![(7, Some(3), vec![1, 2, 3]), (-1, None, vec![])];
        for size in [1, 2, 3, 7, 64, bytes.len()] {
            assert_eq!(parse(&bytes, size).unwrap(), expected, "chunks of {size}");
        }
    }

    #[test]
    fn damaged_streams_are_errors_not_panics() {
        let tuples = vec![vec![
            Some(7i64.to_be_bytes().to_vec()),
            Some(3i32.to_be_bytes().to_vec()),
            Some(vec![9]),
        ]];
        let bytes = stream(&tuples);
        // Cut short: the end marker never comes.
        assert!(parse(&bytes[..bytes.len() - 3], 5).is_err());
        // Not the signature.
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(parse(&wrong, 64).is_err());
        // A field of the wrong width.
        let bad = stream(&[vec![Some(vec![1, 2, 3]), None, Some(vec![])]]);
        assert!(parse(&bad, 64).is_err());
        // A field that claims more bytes than the stream holds.
        let mut short = stream(&[vec![Some(vec![0; 8]), None, Some(vec![1, 2, 3, 4])]]);
        short.truncate(short.len() - 4);
        assert!(parse(&short, 64).is_err());
    }
}
