//! Versioned encodings: every value written to disk or sent to a peer starts with a version byte.
//!
//! Version 1 is the byte `1` followed by JSON. JSON keeps persisted state readable with ordinary
//! tools and is fast enough for the log's sizes; a later binary format gets version 2, and
//! [`decode`] keeps reading version 1 (formats migrate forward, never in place).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Names the current encoding version.
pub const FORMAT_VERSION: u8 = 1;

/// Says why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes were empty, so no version could be read.
    #[error("empty value: no format version byte")]
    Empty,
    /// The version is newer than this build understands.
    #[error("format version {found} is not known to this build (it reads up to {FORMAT_VERSION})")]
    UnknownVersion {
        /// Gives the version found.
        found: u8,
    },
    /// The body did not match the expected shape.
    #[error("cannot decode a version {version} value: {source}")]
    Body {
        /// Gives the version found.
        version: u8,
        /// Gives the decoder's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// Encodes `value` with the current version.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION];
    // Serializing our own types to JSON only fails for maps with non-string keys, which none of
    // the encoded types have.
    serde_json::to_writer(&mut bytes, value).expect("encoded types serialize to JSON");
    bytes
}

/// Decodes bytes written by [`encode`] of this or an earlier version.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        1 => serde_json::from_slice(body).map_err(|source| CodecError::Body { version, source }),
        found => Err(CodecError::UnknownVersion { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let bytes = encode(&("vote", 3u64));
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<(String, u64)>(&bytes).unwrap(), ("vote".to_owned(), 3));
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<(String, u64)>(&future),
            Err(CodecError::UnknownVersion { found: 9 })
        ));
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        assert!(matches!(decode::<u64>(&[1, b'x']), Err(CodecError::Body { .. })));
    }
}
