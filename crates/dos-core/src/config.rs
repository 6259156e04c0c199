//! `config.json`: parse, validate, and write once.
//!
//! The file is written exactly as Python disk-objectstore writes it (same keys, same order, same
//! separators, no trailing newline) and is never rewritten afterwards: AiiDA ties its database to
//! `container_id`.

use serde_json::Value;

use crate::codec::Compression;
use crate::hashing::HashType;

/// Default pack size target: 4 GiB, as Python and AiiDA use.
pub const DEFAULT_PACK_SIZE_TARGET: u64 = 4 * 1024 * 1024 * 1024;
/// Default number of hex characters of the loose shard folder.
pub const DEFAULT_LOOSE_PREFIX_LEN: usize = 2;
/// Largest loose prefix accepted by `init`: longer prefixes make absurd folder counts.
pub const MAX_LOOSE_PREFIX_LEN: usize = 8;

/// A problem with the content of `config.json`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not JSON, or not a JSON object.
    #[error("not a valid JSON object: {0}")]
    Syntax(String),
    /// A key Python requires is absent.
    #[error(
        "missing key {key:?}{hint}",
        hint = if *.legacy {
            " (a container from disk-objectstore < 0.5; open it once with a current Python \
             disk-objectstore to check it, then add the key by hand — dos never rewrites config.json)"
        } else { "" }
    )]
    MissingKey {
        /// The missing key.
        key: &'static str,
        /// True for keys that old (pre-0.5) containers lack.
        legacy: bool,
    },
    /// A key has a value of the wrong type or out of range.
    #[error("invalid value for {key:?}: {detail}")]
    InvalidValue {
        /// The key.
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// The validated content of `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Format version; always 1 so far (never read by Python).
    pub container_version: u64,
    /// Characters of the key used as loose shard folder name (0 = flat).
    pub loose_prefix_len: usize,
    /// A pack is closed for appends once it reaches this many bytes.
    pub pack_size_target: u64,
    /// Hash type of the keys.
    pub hash_type: HashType,
    /// 32 lowercase hex characters, fixed at `init`.
    pub container_id: String,
    /// Compression of packed objects flagged `compressed`.
    pub compression: Compression,
}

impl Config {
    /// Parse and validate the bytes of a `config.json`. Extra keys are ignored, as Python does.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::Syntax("top level is not an object".into()))?;

        let get = |key: &'static str, legacy: bool| {
            obj.get(key).ok_or(ConfigError::MissingKey { key, legacy })
        };
        let uint = |key: &'static str| -> Result<u64, ConfigError> {
            let v = get(key, false)?;
            v.as_u64().ok_or_else(|| ConfigError::InvalidValue {
                key,
                detail: format!("expected a non-negative integer, found {v}"),
            })
        };
        let string = |key: &'static str, legacy: bool| -> Result<&str, ConfigError> {
            let v = get(key, legacy)?;
            v.as_str().ok_or_else(|| ConfigError::InvalidValue {
                key,
                detail: format!("expected a string, found {v}"),
            })
        };

        let container_version = uint("container_version")?;
        let loose_prefix_len =
            usize::try_from(uint("loose_prefix_len")?).map_err(|_| ConfigError::InvalidValue {
                key: "loose_prefix_len",
                detail: "too large".into(),
            })?;
        let pack_size_target = uint("pack_size_target")?;
        if pack_size_target == 0 {
            return Err(ConfigError::InvalidValue {
                key: "pack_size_target",
                detail: "must be > 0".into(),
            });
        }
        let hash_name = string("hash_type", false)?;
        let hash_type =
            HashType::from_name(hash_name).ok_or_else(|| ConfigError::InvalidValue {
                key: "hash_type",
                detail: format!("unknown hash type {hash_name:?} (supported: sha256, sha1)"),
            })?;
        if loose_prefix_len >= hash_type.hex_len() {
            return Err(ConfigError::InvalidValue {
                key: "loose_prefix_len",
                detail: format!("{loose_prefix_len} is not shorter than a {hash_type} key"),
            });
        }
        let container_id = string("container_id", true)?.to_string();
        let algo = string("compression_algorithm", true)?;
        let compression =
            Compression::from_algorithm(algo).ok_or_else(|| ConfigError::InvalidValue {
                key: "compression_algorithm",
                detail: format!("unknown or unsupported compression algorithm {algo:?} (supported: zlib+1 .. zlib+9, zstd+1 .. zstd+19)"),
            })?;
        Ok(Config {
            container_version,
            loose_prefix_len,
            pack_size_target,
            hash_type,
            container_id,
            compression,
        })
    }

    /// The exact bytes Python's `json.dump` writes for this configuration.
    pub fn to_python_json(&self) -> String {
        // Python: json.dump(dict, fh) with default separators (", ", ": "), keys in insertion order.
        format!(
            "{{\"container_version\": {}, \"loose_prefix_len\": {}, \"pack_size_target\": {}, \
             \"hash_type\": \"{}\", \"container_id\": \"{}\", \"compression_algorithm\": \"{}\"}}",
            self.container_version,
            self.loose_prefix_len,
            self.pack_size_target,
            self.hash_type.name(),
            python_json_escape(&self.container_id),
            self.compression.algorithm(),
        )
    }
}

/// The inside of a JSON string as Python's `json.dumps` writes it (`ensure_ascii`): quotes,
/// backslashes and control characters escaped, everything beyond ASCII as `\uXXXX` (surrogate
/// pairs above U+FFFF). A container id read from a hand-edited `config.json` may hold anything.
fn python_json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A fresh container id: 32 lowercase hex characters from the OS random source (the shape of
/// Python's `uuid4().hex`, including the version and variant nibbles).
pub fn new_container_id() -> Result<String, std::io::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    Ok(crate::hashing::to_hex(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_container_ids_are_written_as_python_writes_them() {
        // json.dumps('a"b\\c\x01\x7f\u00e9\U0001F600\n') in CPython 3.11:
        let want = r#""a\"b\\c\u0001\u007f\u00e9\ud83d\ude00\n""#;
        let id = "a\"b\\c\u{1}\u{7f}\u{e9}\u{1F600}\n";
        assert_eq!(format!("\"{}\"", python_json_escape(id)), want);
        let cfg = Config::parse(PY.as_bytes()).unwrap();
        let odd = Config {
            container_id: id.to_string(),
            ..cfg
        };
        assert_eq!(Config::parse(odd.to_python_json().as_bytes()).unwrap(), odd);
    }

    const PY: &str = r#"{"container_version": 1, "loose_prefix_len": 2, "pack_size_target": 4294967296, "hash_type": "sha256", "container_id": "239e79b69e9f489486a3942346d0bcaa", "compression_algorithm": "zlib+1"}"#;

    #[test]
    fn python_bytes_round_trip() {
        let c = Config::parse(PY.as_bytes()).unwrap();
        assert_eq!(c.loose_prefix_len, 2);
        assert_eq!(c.pack_size_target, DEFAULT_PACK_SIZE_TARGET);
        assert_eq!(c.hash_type, HashType::Sha256);
        assert_eq!(
            c.compression,
            crate::Compression::Zlib(crate::ZlibLevel::DEFAULT)
        );
        assert_eq!(c.to_python_json(), PY);
    }

    #[test]
    fn extra_keys_ignored() {
        let s = PY.replace('}', r#", "future": [1,2]}"#);
        assert!(Config::parse(s.as_bytes()).is_ok());
    }

    #[test]
    fn legacy_and_bad_values_are_named() {
        let legacy = r#"{"container_version": 1, "loose_prefix_len": 2, "pack_size_target": 4, "hash_type": "sha256"}"#;
        match Config::parse(legacy.as_bytes()) {
            Err(ConfigError::MissingKey { key, legacy }) => {
                assert_eq!(key, "container_id");
                assert!(legacy);
            }
            other => panic!("{other:?}"),
        }
        for (from, to, key) in [
            ("\"sha256\"", "\"md5\"", "hash_type"),
            ("\"zlib+1\"", "\"zstd+20\"", "compression_algorithm"),
            ("\"zlib+1\"", "\"zstd+03\"", "compression_algorithm"),
            ("\"zlib+1\"", "\"lz4\"", "compression_algorithm"),
            ("\"zlib+1\"", "\"zlib+0\"", "compression_algorithm"),
            ("\"zlib+1\"", "\"zlib+10\"", "compression_algorithm"),
            ("4294967296", "0", "pack_size_target"),
            ("4294967296", "-5", "pack_size_target"),
            (
                "\"loose_prefix_len\": 2",
                "\"loose_prefix_len\": \"2\"",
                "loose_prefix_len",
            ),
        ] {
            let s = PY.replace(from, to);
            match Config::parse(s.as_bytes()) {
                Err(ConfigError::InvalidValue { key: k, .. }) => assert_eq!(k, key, "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
        assert!(matches!(Config::parse(b"[1]"), Err(ConfigError::Syntax(_))));
        assert!(matches!(Config::parse(b"{"), Err(ConfigError::Syntax(_))));
    }

    #[test]
    fn container_ids_look_like_uuid4_hex() {
        let a = new_container_id().unwrap();
        let b = new_container_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(crate::hashing::is_lower_hex(&a));
        assert_ne!(a, b);
        assert_eq!(&a[12..13], "4");
    }
}
