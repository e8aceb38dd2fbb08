//! The records of `__consumer_offsets` as the group coordinator reads them back: keys (offset
//! commit, group metadata) and values (offset commit, group metadata with its members).
//! The same bytes go through every decoder. What decodes must survive a round trip: encoding
//! it and decoding that gives the same value, and an encoded key is the bytes it came from
//! (after the version, which v0 offset keys change to v1).

#![no_main]

use bytes::Bytes;
use klamm::group::records::{GroupValue, Key, OffsetValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Some(key) = Key::decode(bytes.clone()) {
        let encoded = key.encode();
        assert_eq!(Key::decode(encoded.clone()).as_ref(), Some(&key));
        assert!(encoded.len() <= data.len());
        assert_eq!(encoded[2..], data[2..encoded.len()], "{key:?}");
        let _ = key.group();
    }
    if let Some(value) = OffsetValue::decode(bytes.clone()) {
        assert_eq!(OffsetValue::decode(value.encode()).as_ref(), Some(&value));
    }
    if let Some(value) = GroupValue::decode(bytes) {
        assert_eq!(GroupValue::decode(value.encode()).as_ref(), Some(&value));
    }
});
