//! Walks a request body against its layout without building anything, checking that every
//! length and count fits in the bytes that remain.
//!
//! An array of `n` elements cannot be shorter than `n` times the smallest encoding of one
//! element (at least one byte each), so a count the remaining bytes cannot hold is refused
//! before anything is reserved for it. Strings and bytes must fit, null is accepted only where
//! the layout allows it, varints are at most 5 bytes, and a known tagged field must take
//! exactly the size its header declares. The walk allocates nothing and touches each byte of
//! the body at most once (record data inside Produce is skipped by its length).

use kafka_protocol::messages::ApiKey;
use thiserror::Error;

use super::layout::{Elem, Field, Layout, Ty};
use super::requests;

/// Why a request body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrecheckError {
    #[error("no request layout for {api:?} v{version}")]
    NoLayout { api: ApiKey, version: i16 },
    #[error("{field}: {needed} bytes needed at offset {at}, {left} left")]
    Truncated {
        field: &'static str,
        at: usize,
        needed: u64,
        left: usize,
    },
    #[error("{field}: {count} elements need at least {needed} bytes at offset {at}, {left} left")]
    CountTooLarge {
        field: &'static str,
        at: usize,
        count: u64,
        needed: u64,
        left: usize,
    },
    #[error("{field}: negative length {len} at offset {at}")]
    NegativeLength {
        field: &'static str,
        at: usize,
        len: i32,
    },
    #[error("{field}: null at offset {at}, but the field is not nullable")]
    Null { field: &'static str, at: usize },
    #[error("{field}: varint longer than 5 bytes at offset {at}")]
    VarintTooLong { field: &'static str, at: usize },
    #[error("{field}: tagged field {tag} declares {declared} bytes but its value takes {used}")]
    TagSize {
        field: &'static str,
        tag: u32,
        declared: usize,
        used: usize,
    },
}

/// What a length prefix announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthKind {
    Str,
    Bytes,
    Array,
}

/// Where a length prefix sits in a body (see [`length_sites`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthSite {
    pub kind: LengthKind,
    /// Offset of the prefix in the body.
    pub at: usize,
    /// Bytes the prefix takes.
    pub width: usize,
    /// An unsigned varint holding length + 1 (flexible versions), else a big-endian integer.
    pub compact: bool,
}

impl LengthSite {
    /// `body` with this prefix announcing `length` instead (capped to what the prefix can
    /// hold): how tests inflate counts.
    pub fn with_length(&self, body: &[u8], length: u64) -> Vec<u8> {
        let mut prefix = Vec::with_capacity(5);
        if self.compact {
            let mut v = length.saturating_add(1).min(u32::MAX as u64) as u32;
            while v >= 0x80 {
                prefix.push(v as u8 | 0x80);
                v >>= 7;
            }
            prefix.push(v as u8);
        } else if self.width == 2 {
            prefix.extend_from_slice(&(length.min(i16::MAX as u64) as i16).to_be_bytes());
        } else {
            prefix.extend_from_slice(&(length.min(i32::MAX as u64) as i32).to_be_bytes());
        }
        [&body[..self.at], &prefix[..], &body[self.at + self.width..]].concat()
    }
}

/// Checks `body`, a request of `key` at `version`, and returns how many bytes the request
/// takes. The caller must already have checked that the version is one we serve.
pub fn precheck(key: ApiKey, version: i16, body: &[u8]) -> Result<usize, PrecheckError> {
    precheck_layout(layout_for(key, version)?, version, body)
}

/// Every length prefix of a body that passes the check, in order (for tests and diagnostics).
pub fn length_sites(
    key: ApiKey,
    version: i16,
    body: &[u8],
) -> Result<Vec<LengthSite>, PrecheckError> {
    let layout = layout_for(key, version)?;
    let mut sites = Vec::new();
    Walk::new(layout, version, body, Some(&mut sites)).run(layout)?;
    Ok(sites)
}

/// [`precheck`] against a given layout.
pub(super) fn precheck_layout(
    layout: &Layout,
    version: i16,
    body: &[u8],
) -> Result<usize, PrecheckError> {
    Walk::new(layout, version, body, None).run(layout)
}

fn layout_for(key: ApiKey, version: i16) -> Result<&'static Layout, PrecheckError> {
    requests::for_api(key)
        .filter(|l| l.versions.contains(version))
        .ok_or(PrecheckError::NoLayout { api: key, version })
}

/// The smallest number of bytes a value of `ty` can take at a version.
pub fn min_size(ty: Ty, version: i16, flexible: bool) -> usize {
    match ty {
        Ty::Str => {
            if flexible {
                1
            } else {
                2
            }
        }
        Ty::Bytes | Ty::Array(_) => {
            if flexible {
                1
            } else {
                4
            }
        }
        Ty::Struct(fields) => fields
            .iter()
            .filter(|f| f.in_body(version))
            .map(|f| min_size(f.ty, version, flexible))
            .sum::<usize>()
            .saturating_add(flexible as usize),
        Ty::OptStruct(_) => 1,
        fixed => fixed.fixed_size().unwrap_or(1),
    }
}

struct Walk<'b, 's> {
    body: &'b [u8],
    at: usize,
    version: i16,
    flexible: bool,
    sites: Option<&'s mut Vec<LengthSite>>,
}

impl<'b, 's> Walk<'b, 's> {
    fn new(
        layout: &Layout,
        version: i16,
        body: &'b [u8],
        sites: Option<&'s mut Vec<LengthSite>>,
    ) -> Self {
        Walk {
            body,
            at: 0,
            version,
            flexible: layout.flexible.contains(version),
            sites,
        }
    }

    fn run(mut self, layout: &Layout) -> Result<usize, PrecheckError> {
        self.fields(layout.body)?;
        Ok(self.at)
    }

    fn left(&self) -> usize {
        self.body.len() - self.at
    }

    fn skip(&mut self, n: u64, field: &'static str) -> Result<(), PrecheckError> {
        if n > self.left() as u64 {
            return Err(PrecheckError::Truncated {
                field,
                at: self.at,
                needed: n,
                left: self.left(),
            });
        }
        self.at += n as usize;
        Ok(())
    }

    fn read<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], PrecheckError> {
        let start = self.at;
        self.skip(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.body[start..self.at]);
        Ok(out)
    }

    /// An unsigned varint of at most 5 bytes (kafka-protocol stops after 5; Kafka refuses
    /// more).
    fn uvarint(&mut self, field: &'static str) -> Result<u32, PrecheckError> {
        let start = self.at;
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.read::<1>(field)?;
            value |= ((b & 0x7f) as u32) << (i * 7);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PrecheckError::VarintTooLong { field, at: start })
    }

    /// A length prefix: `None` for null. Refuses null where the field is not nullable.
    fn length(
        &mut self,
        kind: LengthKind,
        nullable: bool,
        field: &'static str,
    ) -> Result<Option<u64>, PrecheckError> {
        let at = self.at;
        let len = if self.flexible {
            match self.uvarint(field)? {
                0 => None,
                n => Some(n as u64 - 1),
            }
        } else {
            let n = match kind {
                LengthKind::Str => i16::from_be_bytes(self.read(field)?) as i32,
                LengthKind::Bytes | LengthKind::Array => i32::from_be_bytes(self.read(field)?),
            };
            match n {
                -1 => None,
                n if n < 0 => return Err(PrecheckError::NegativeLength { field, at, len: n }),
                n => Some(n as u64),
            }
        };
        if let Some(sites) = self.sites.as_deref_mut() {
            sites.push(LengthSite {
                kind,
                at,
                width: self.at - at,
                compact: self.flexible,
            });
        }
        if len.is_none() && !nullable {
            return Err(PrecheckError::Null { field, at });
        }
        Ok(len)
    }

    /// The fields of a struct in order, then (flexible versions) its tag section.
    fn fields(&mut self, fields: &'static [Field]) -> Result<(), PrecheckError> {
        let version = self.version;
        for field in fields.iter().filter(|f| f.in_body(version)) {
            self.value(field.ty, field.nullable, field.name)?;
        }
        if self.flexible {
            self.tags(fields)?;
        }
        Ok(())
    }

    fn value(&mut self, ty: Ty, nullable: bool, field: &'static str) -> Result<(), PrecheckError> {
        match ty {
            Ty::Str => {
                if let Some(n) = self.length(LengthKind::Str, nullable, field)? {
                    self.skip(n, field)?;
                }
            }
            Ty::Bytes => {
                if let Some(n) = self.length(LengthKind::Bytes, nullable, field)? {
                    self.skip(n, field)?;
                }
            }
            Ty::Array(elem) => self.array(elem, nullable, field)?,
            Ty::Struct(fields) => self.fields(fields)?,
            Ty::OptStruct(fields) => {
                let [marker] = self.read::<1>(field)?;
                if marker == 1 {
                    self.fields(fields)?;
                }
            }
            fixed => self.skip(fixed.fixed_size().unwrap_or(0) as u64, field)?,
        }
        Ok(())
    }

    fn array(
        &mut self,
        elem: Elem,
        nullable: bool,
        field: &'static str,
    ) -> Result<(), PrecheckError> {
        let at = self.at;
        let Some(count) = self.length(LengthKind::Array, nullable, field)? else {
            return Ok(());
        };
        // Every element takes at least one byte, even one whose fields are all absent.
        let each = min_size(elem.ty(), self.version, self.flexible).max(1) as u64;
        let needed = count.saturating_mul(each);
        if needed > self.left() as u64 {
            return Err(PrecheckError::CountTooLarge {
                field,
                at,
                count,
                needed,
                left: self.left(),
            });
        }
        for _ in 0..count {
            self.value(elem.ty(), false, field)?;
        }
        Ok(())
    }

    /// A tag section. kafka-protocol reads a known tag's value straight from the body, so its
    /// value is walked like any field and must take exactly its declared size; unknown tags
    /// are skipped by their size.
    fn tags(&mut self, fields: &'static [Field]) -> Result<(), PrecheckError> {
        let count = self.uvarint("tagged fields")?;
        // Each tagged field takes at least two bytes (tag and size), so a count larger than
        // the body runs out of bytes after at most body.len() / 2 rounds.
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tag size")? as usize;
            if size > self.left() {
                return Err(PrecheckError::Truncated {
                    field: "tagged field",
                    at: self.at,
                    needed: size as u64,
                    left: self.left(),
                });
            }
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.versions.contains(self.version));
            match known {
                Some(field) => {
                    let start = self.at;
                    self.value(field.ty, field.nullable, field.name)?;
                    let used = self.at - start;
                    if used != size {
                        return Err(PrecheckError::TagSize {
                            field: field.name,
                            tag,
                            declared: size,
                            used,
                        });
                    }
                }
                None => self.skip(size as u64, "tagged field")?,
            }
        }
        Ok(())
    }
}
