//! A produced record batch through the checks the produce path makes before an append
//! (`topics::validate::validate_records`: framing, header, CRC, every record walked, compressed
//! records streamed through their decompressor within the topic's limit), under default topic
//! settings, a compacted topic and a small `max.message.bytes`. A batch that passes is then
//! decoded as a stored batch is (`log::records::decode_stored`: compaction, group loading).
//!
//! Each input runs as it is and, when its CRC does not match, once more with the CRC fixed,
//! so that mutations reach the checks behind the checksum.

#![no_main]

use std::sync::OnceLock;

use klamm::topics::config::TopicSettings;
use klamm::topics::validate::validate_records;
use libfuzzer_sys::fuzz_target;

fn settings() -> &'static [TopicSettings; 3] {
    static S: OnceLock<[TopicSettings; 3]> = OnceLock::new();
    S.get_or_init(|| {
        [
            klamm_fuzz::topic_settings(&[]),
            klamm_fuzz::topic_settings(&[("cleanup.policy", "compact")]),
            klamm_fuzz::topic_settings(&[("max.message.bytes", "1024")]),
        ]
    })
}

fn check(batch: &[u8]) {
    let mut passed = false;
    for s in settings() {
        passed |= validate_records(batch, s, klamm_fuzz::NOW_MS).is_ok();
    }
    if passed {
        let _ = klamm::log::records::decode_stored(&bytes::Bytes::copy_from_slice(batch));
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = klamm::log::batch::validate(data);
    check(data);
    let mut fixed = data.to_vec();
    if klamm_fuzz::fix_crc(&mut fixed) {
        check(&fixed);
    }
});
