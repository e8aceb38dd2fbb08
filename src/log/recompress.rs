//! Recompressing a produced batch into its topic's codec, as Kafka's log validator does when a
//! topic's `compression.type` is a codec (or `uncompressed`) and the producer used another.
//! Only the records section changes: it is decompressed whole and compressed again, the
//! records themselves untouched; the header gets the new codec, length and CRC.

use std::io::Write;

use super::batch::{BatchHeader, HEADER_LEN};
use super::records::{self, RecordsError};

/// Codec ids in a batch's attributes.
pub const NONE: i16 = 0;
pub const GZIP: i16 = 1;
pub const SNAPPY: i16 = 2;
pub const LZ4: i16 = 3;
pub const ZSTD: i16 = 4;

/// The levels the broker compresses with (`compression.<codec>.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// -1: zlib's default (6).
    pub gzip: i32,
    pub lz4: u32,
    pub zstd: i32,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            gzip: -1,
            lz4: 9,
            zstd: 3,
        }
    }
}

/// The codec id of a `compression.type`; `None` for `producer` (batches are kept as sent).
pub fn target_codec(compression_type: &str) -> Option<i16> {
    match compression_type {
        "uncompressed" => Some(NONE),
        "gzip" => Some(GZIP),
        "snappy" => Some(SNAPPY),
        "lz4" => Some(LZ4),
        "zstd" => Some(ZSTD),
        _ => None,
    }
}

/// The batch with its records compressed with `codec`, or `None` when they already are.
/// `batch` has been validated (its records decompress within `limit`).
pub fn recompress(
    batch: &[u8],
    header: &BatchHeader,
    codec: i16,
    levels: Levels,
    limit: usize,
) -> Result<Option<Vec<u8>>, RecordsError> {
    if header.compression_codec() == codec {
        return Ok(None);
    }
    let section = batch.get(HEADER_LEN..).unwrap_or_default();
    let raw = records::decompress(section, header.compression_codec(), limit)?;
    let packed = compress(&raw, codec, levels)?;
    let mut out = Vec::with_capacity(HEADER_LEN + packed.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&packed);
    // Attributes (offset 21): the low three bits are the codec.
    let attributes = i16::from_be_bytes([out[21], out[22]]);
    out[21..23].copy_from_slice(&((attributes & !0x7) | codec).to_be_bytes());
    // Batch length (offset 8) counts what follows it; the CRC (offset 17) covers everything
    // from the attributes on.
    let length =
        i32::try_from(out.len() - 12).map_err(|_| RecordsError::TooLarge(i32::MAX as usize))?;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

fn compress(raw: &[u8], codec: i16, levels: Levels) -> Result<Vec<u8>, RecordsError> {
    let failed = |e: std::io::Error| RecordsError::Decompress(format!("compressing: {e}"));
    match codec {
        NONE => Ok(raw.to_vec()),
        GZIP => {
            let level = if levels.gzip < 0 {
                flate2::Compression::default()
            } else {
                flate2::Compression::new(levels.gzip as u32)
            };
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(raw).map_err(failed)?;
            e.finish().map_err(failed)
        }
        SNAPPY => records::snappy_framed(raw),
        LZ4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(levels.lz4)
                .build(Vec::new())
                .map_err(failed)?;
            e.write_all(raw).map_err(failed)?;
            let (out, done) = e.finish();
            done.map_err(failed)?;
            Ok(out)
        }
        ZSTD => zstd::bulk::compress(raw, levels.zstd).map_err(failed),
        other => Err(RecordsError::UnknownCodec(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch;
    use crate::log::records::tests::{batch as make_batch, record};
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    /// Every codec into every other: the records read back the same through kafka-protocol's
    /// decoder (as a client reads them), the header says the new codec and its CRC holds.
    #[test]
    fn every_codec_into_every_other_keeps_the_records() {
        let codecs = [
            (Compression::None, NONE),
            (Compression::Gzip, GZIP),
            (Compression::Snappy, SNAPPY),
            (Compression::Lz4, LZ4),
            (Compression::Zstd, ZSTD),
        ];
        let records: Vec<_> = (0..50)
            .map(|i| record(i, Some(b"key"), format!("value {i}").repeat(20).as_bytes()))
            .collect();
        for (from, _) in codecs {
            let original = make_batch(from, &records);
            let header = batch::validate(&original).expect("valid batch");
            for (_, to) in codecs {
                let out = recompress(&original, &header, to, Levels::default(), 1 << 20)
                    .expect("recompressed");
                let Some(out) = out else {
                    assert_eq!(header.compression_codec(), to);
                    continue;
                };
                let h = batch::validate(&out).expect("a valid batch, CRC included");
                assert_eq!(h.compression_codec(), to, "{from:?} -> {to}");
                assert_eq!(h.record_count, 50);
                let mut bytes = bytes::Bytes::from(out);
                let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decodes");
                let values: Vec<_> = sets[0].records.iter().map(|r| r.value.clone()).collect();
                let expected: Vec<_> = records.iter().map(|r| r.value.clone()).collect();
                assert_eq!(values, expected, "{from:?} -> {to}");
            }
        }
    }
}
