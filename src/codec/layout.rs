//! The vocabulary request layouts are written in: a field has a name, the versions it exists
//! in, a wire type, and may be nullable or tagged. It mirrors the shape of Kafka's message
//! schemas (`clients/src/main/resources/common/message/*Request.json`), written down as Rust
//! constants so that a layout is checked by the compiler and costs nothing to look up.
//!
//! How a type is encoded depends on whether the message version is *flexible* (KIP-482):
//!
//! | type      | classic versions                | flexible versions                      |
//! |-----------|---------------------------------|----------------------------------------|
//! | string    | INT16 length, -1 for null       | unsigned varint length + 1, 0 for null |
//! | bytes     | INT32 length, -1 for null       | unsigned varint length + 1, 0 for null |
//! | array     | INT32 count, -1 for null        | unsigned varint count + 1, 0 for null  |
//! | struct    | its fields in order             | its fields, then its tagged fields     |
//!
//! Tagged fields only exist in flexible versions: a varint count, then for each a varint tag,
//! a varint size and the value.

use kafka_protocol::messages::ApiKey;

/// The versions a field (or a layout) exists in, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub first: i16,
    pub last: i16,
}

impl Versions {
    pub const fn contains(self, version: i16) -> bool {
        self.first <= version && version <= self.last
    }
}

/// `version` and every later one.
pub const fn from(first: i16) -> Versions {
    Versions {
        first,
        last: i16::MAX,
    }
}

/// `first..=last`.
pub const fn span(first: i16, last: i16) -> Versions {
    Versions { first, last }
}

/// Every version.
pub const ALL: Versions = from(0);

/// No version at all (a message without flexible versions).
pub const NEVER: Versions = Versions { first: 1, last: 0 };

/// A field's wire type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    Uuid,
    Str,
    Bytes,
    Array(Elem),
    /// A struct held directly (only ever as a tagged field in the requests we serve).
    Struct(&'static [Field]),
    /// An INT8 marker, then the struct when the marker is 1 (how kafka-protocol reads a
    /// nullable struct).
    OptStruct(&'static [Field]),
}

/// The element type of an array. Elements are never null.
#[derive(Debug, Clone, Copy)]
pub enum Elem {
    I32,
    Str,
    Struct(&'static [Field]),
}

impl Elem {
    pub const fn ty(self) -> Ty {
        match self {
            Elem::I32 => Ty::I32,
            Elem::Str => Ty::Str,
            Elem::Struct(fields) => Ty::Struct(fields),
        }
    }
}

impl Ty {
    /// Bytes of a fixed-size type, `None` for the others.
    pub const fn fixed_size(self) -> Option<usize> {
        match self {
            Ty::Bool | Ty::I8 => Some(1),
            Ty::I16 => Some(2),
            Ty::I32 => Some(4),
            Ty::I64 => Some(8),
            Ty::Uuid => Some(16),
            _ => None,
        }
    }
}

/// One field of a struct.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub versions: Versions,
    pub ty: Ty,
    /// May be null (strings, bytes, arrays) in every version it exists in.
    pub nullable: bool,
    /// Tagged fields live in the struct's tag section, by this tag, in flexible versions.
    pub tag: Option<u32>,
}

/// A field in `versions` of type `ty`.
pub const fn f(name: &'static str, versions: Versions, ty: Ty) -> Field {
    Field {
        name,
        versions,
        ty,
        nullable: false,
        tag: None,
    }
}

/// A tagged field.
pub const fn tagged(tag: u32, name: &'static str, versions: Versions, ty: Ty) -> Field {
    Field {
        tag: Some(tag),
        ..f(name, versions, ty)
    }
}

impl Field {
    pub const fn nullable(self) -> Field {
        Field {
            nullable: true,
            ..self
        }
    }

    /// Is the field written in the struct's regular (untagged) part at `version`?
    pub const fn in_body(&self, version: i16) -> bool {
        self.tag.is_none() && self.versions.contains(version)
    }
}

/// An array of structs.
pub const fn array(fields: &'static [Field]) -> Ty {
    Ty::Array(Elem::Struct(fields))
}

/// `[]int32`.
pub const INT32_ARRAY: Ty = Ty::Array(Elem::I32);
/// `[]string`.
pub const STRING_ARRAY: Ty = Ty::Array(Elem::Str);

/// The layout of one API's request body.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub key: ApiKey,
    /// The versions this layout describes.
    pub versions: Versions,
    /// The versions that use compact types and tagged fields.
    pub flexible: Versions,
    pub body: &'static [Field],
}
