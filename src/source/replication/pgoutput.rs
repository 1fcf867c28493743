//! Decoding the messages of Postgres' built-in `pgoutput` logical decoding
//! plugin (protocol version 1), as carried in the replication stream's
//! XLogData payloads. Pure: bytes in, typed messages out.
//!
//! Format: <https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html>

use std::fmt;

/// Microseconds between the Unix epoch and Postgres' epoch, 2000-01-01,
/// which the protocol's timestamps count from.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A WAL position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl std::str::FromStr for Lsn {
    type Err = String;

    /// Parses Postgres' `X/Y` notation.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not an LSN"))?;
        let hi = u64::from_str_radix(hi, 16).map_err(|e| format!("`{s}`: {e}"))?;
        let lo = u64::from_str_radix(lo, 16).map_err(|e| format!("`{s}`: {e}"))?;
        Ok(Lsn((hi << 32) | lo))
    }
}

/// One pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum PgOutput {
    Begin {
        final_lsn: Lsn,
        /// Microseconds since 2000-01-01 (the Postgres epoch).
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        /// The end of the transaction: what to confirm once it is handled.
        end_lsn: Lsn,
        commit_time: i64,
    },
    Origin {
        commit_lsn: Lsn,
        name: String,
    },
    Relation(Relation),
    Type {
        id: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        /// The old key ('K') or whole old row ('O'), if the replica identity sends one.
        old: Option<Tuple>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        old: Tuple,
    },
    Truncate {
        relations: Vec<u32>,
        /// 1 = CASCADE, 2 = RESTART IDENTITY.
        options: u8,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    LogicalMessage {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Vec<u8>,
    },
}

/// A table's shape, sent before its first change in a session and again
/// after it changes; later tuples are read against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub replica_identity: u8,
    pub columns: Vec<Column>,
}

impl Relation {
    /// Position of the column called `name`, if the table has one.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Part of the replica identity (usually the primary key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A row's values, in the relation's column order.
pub type Tuple = Vec<Value>;

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// A TOASTed value that did not change (updates only).
    Unchanged,
    /// The value in Postgres' text output format.
    Text(Vec<u8>),
    /// The value in binary format (only with the `binary` option).
    Binary(Vec<u8>),
}

impl Value {
    /// The text of a text-format value.
    pub fn as_text(&self) -> Option<&[u8]> {
        match self {
            Value::Text(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// Bytes that are not a pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("unknown message type {0:?}")]
    UnknownMessage(char),
    #[error("unknown tuple marker {marker:?} in {message} message")]
    UnexpectedMarker { message: &'static str, marker: char },
    #[error("unknown column value kind {0:?}")]
    UnknownValueKind(char),
    #[error("string not terminated at offset {0}")]
    Unterminated(usize),
    #[error("negative length {0}")]
    NegativeLength(i32),
}

/// Decodes one message.
pub fn decode(bytes: &[u8]) -> Result<PgOutput, DecodeError> {
    let mut r = Reader { bytes, offset: 0 };
    let tag = r.u8()? as char;
    let message = match tag {
        'B' => PgOutput::Begin {
            final_lsn: Lsn(r.u64()?),
            commit_time: r.i64()?,
            xid: r.u32()?,
        },
        'C' => {
            let _flags = r.u8()?;
            PgOutput::Commit {
                commit_lsn: Lsn(r.u64()?),
                end_lsn: Lsn(r.u64()?),
                commit_time: r.i64()?,
            }
        }
        'O' => PgOutput::Origin {
            commit_lsn: Lsn(r.u64()?),
            name: r.cstring()?,
        },
        'R' => {
            let id = r.u32()?;
            let namespace = r.cstring()?;
            let name = r.cstring()?;
            let replica_identity = r.u8()?;
            let count = r.i16()?.max(0) as usize;
            let mut columns = Vec::with_capacity(count);
            for _ in 0..count {
                columns.push(Column {
                    key: r.u8()? & 1 == 1,
                    name: r.cstring()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            PgOutput::Relation(Relation {
                id,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        'Y' => PgOutput::Type {
            id: r.u32()?,
            namespace: r.cstring()?,
            name: r.cstring()?,
        },
        'I' => {
            let relation = r.u32()?;
            r.expect_marker("insert", &['N'])?;
            PgOutput::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        'U' => {
            let relation = r.u32()?;
            let (old, new) = match r.u8()? as char {
                'K' | 'O' => {
                    let old = r.tuple()?;
                    r.expect_marker("update", &['N'])?;
                    (Some(old), r.tuple()?)
                }
                'N' => (None, r.tuple()?),
                marker => {
                    return Err(DecodeError::UnexpectedMarker {
                        message: "update",
                        marker,
                    });
                }
            };
            PgOutput::Update { relation, old, new }
        }
        'D' => {
            let relation = r.u32()?;
            r.expect_marker("delete", &['K', 'O'])?;
            PgOutput::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        'T' => {
            let count = r.u32()? as usize;
            let options = r.u8()?;
            let mut relations = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                relations.push(r.u32()?);
            }
            PgOutput::Truncate { relations, options }
        }
        'M' => {
            let transactional = r.u8()? & 1 == 1;
            let lsn = Lsn(r.u64()?);
            let prefix = r.cstring()?;
            let length = r.i32()?;
            let content = r.take(len(length)?)?.to_vec();
            PgOutput::LogicalMessage {
                transactional,
                lsn,
                prefix,
                content,
            }
        }
        other => return Err(DecodeError::UnknownMessage(other)),
    };
    Ok(message)
}

fn len(n: i32) -> Result<usize, DecodeError> {
    usize::try_from(n).map_err(|_| DecodeError::NegativeLength(n))
}

/// A cursor over big-endian message bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .offset
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated {
                offset: self.offset,
                needed: n - (self.bytes.len() - self.offset),
            });
        };
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn cstring(&mut self) -> Result<String, DecodeError> {
        let rest = &self.bytes[self.offset..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Unterminated(self.offset))?;
        let text = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.offset += nul + 1;
        Ok(text)
    }

    fn expect_marker(
        &mut self,
        message: &'static str,
        allowed: &[char],
    ) -> Result<(), DecodeError> {
        let marker = self.u8()? as char;
        if allowed.contains(&marker) {
            Ok(())
        } else {
            Err(DecodeError::UnexpectedMarker { message, marker })
        }
    }

    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let count = self.i16()?.max(0) as usize;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(match self.u8()? as char {
                'n' => Value::Null,
                'u' => Value::Unchanged,
                't' => {
                    let n = len(self.i32()?)?;
                    Value::Text(self.take(n)?.to_vec())
                }
                'b' => {
                    let n = len(self.i32()?)?;
                    Value::Binary(self.take(n)?.to_vec())
                }
                other => return Err(DecodeError::UnknownValueKind(other)),
            });
        }
        Ok(values)
    }
}

#[cfg(test)]
#[path = "pgoutput_tests.rs"]
mod tests;
