//! The codec boundary: where request bytes become values.
//!
//! kafka-protocol decodes request headers and bodies for us, but its array decoders reserve
//! room for as many elements as the count on the wire claims before reading any of them: a
//! 40-byte Metadata request whose topic count claims 2^32-2 asks for a 300 GB allocation and
//! aborts the process. So before a body reaches the crate, [`precheck`] walks it against our
//! own description of the request's layout ([`requests`], written in the vocabulary of
//! [`layout`]) and refuses any count, length or tagged field that the remaining bytes cannot
//! hold. A refused body is treated like one the crate cannot decode: the connection is closed
//! with the reason logged, and every other connection carries on.
//!
//! Strings and bytes are read by the crate with checked lengths, and request headers have no
//! arrays, so bodies are the only place this is needed.

pub mod layout;
mod precheck;
pub mod requests;

#[cfg(test)]
mod tests;

pub use precheck::{length_sites, min_size, precheck, LengthKind, LengthSite, PrecheckError};
