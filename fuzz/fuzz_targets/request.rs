//! Request frames as a client sends them (header and body, without the 4-byte size prefix),
//! through the broker's decoding: API key and version against the table, header, pre-check of
//! every length on the wire, body. Any result is fine; a panic or an abort (an allocation too
//! big to make counts) is a bug. A decoded Produce request's batches then go through the
//! validation the produce handler runs before an append.

#![no_main]

use klamm::api::RequestBody;
use klamm::server::{decode_request, Decoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_request(bytes::Bytes::copy_from_slice(data));
    if let Ok(Decoded::Request {
        body: RequestBody::Produce(produce),
        ..
    }) = decoded
    {
        let settings = klamm_fuzz::default_topic_settings();
        for topic in &produce.topic_data {
            for partition in &topic.partition_data {
                if let Some(records) = &partition.records {
                    let _ = klamm::topics::validate::validate_records(
                        records,
                        settings,
                        klamm_fuzz::NOW_MS,
                    );
                }
            }
        }
    }
});
