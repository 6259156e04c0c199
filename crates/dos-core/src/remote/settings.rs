//! `dos-remote.json`: the bucket a container offloads packs to. dos-only (Python never reads it);
//! it holds no credentials.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::container::write_file_atomically;
use crate::error::{Error, Result};
use crate::layout::Layout;

/// Name of the settings file in the container folder.
pub const REMOTE_SETTINGS_FILE: &str = "dos-remote.json";

/// An `s3://bucket/prefix` location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RemoteUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl RemoteUrl {
    /// Parse `s3://bucket[/prefix]`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?}: a remote location is s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "{s:?}: {bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, '-' and '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(format!(
                "{s:?}: the prefix may not hold '.', '..' or empty parts"
            ));
        }
        // Characters every S3 client writes as they are (others are percent-encoded by some,
        // and a listing would then not match the names the index records).
        if let Some(c) = prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')))
        {
            return Err(format!(
                "{s:?}: {c:?} in the prefix: use letters, digits, '-', '_', '.' and '/'"
            ));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The full key of `name` (a name under the prefix).
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// Whether `s` looks like a remote location rather than a path.
    pub fn is_remote(s: &str) -> bool {
        s.starts_with("s3://")
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl TryFrom<String> for RemoteUrl {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<RemoteUrl> for String {
    fn from(u: RemoteUrl) -> String {
        u.to_string()
    }
}

/// Where a container's remote packs live and how to reach them (no credentials: those come
/// from the environment of the program that opens the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSettings {
    /// The bucket and prefix.
    pub url: RemoteUrl,
    /// The server (`https://...` or `http://...`); `None`: the program's default (AWS, or
    /// `AWS_ENDPOINT_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region; `None`: the program's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Bytes of remote ranges kept in a local cache (0: no cache).
    #[serde(default)]
    pub cache_bytes: u64,
}

impl RemoteSettings {
    /// Settings for `url` with the program's defaults.
    pub fn new(url: RemoteUrl) -> Self {
        Self {
            url,
            endpoint: None,
            region: None,
            cache_bytes: 0,
        }
    }

    /// The settings of the container at `layout`, if it has any.
    pub fn load(layout: &Layout) -> Result<Option<Self>> {
        let path = layout.root.join(REMOTE_SETTINGS_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, "read", e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::io(
                &path,
                "parse",
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Write these settings into the container at `layout` (atomically).
    pub fn save(&self, layout: &Layout) -> Result<()> {
        let path = layout.root.join(REMOTE_SETTINGS_FILE);
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io(&path, "encode", io::Error::other(e)))?;
        text.push('\n');
        write_file_atomically(layout, &path, text.as_bytes())?;
        crate::durable::sync_dir(&layout.root)
    }

    /// Remove the settings file of the container at `layout`.
    pub fn remove(layout: &Layout) -> Result<()> {
        let path = layout.root.join(REMOTE_SETTINGS_FILE);
        match fs::remove_file(&path) {
            Ok(()) => crate::durable::sync_dir(&layout.root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, "remove", e)),
        }
    }

    /// Read settings from a file's bytes (a published snapshot's copy).
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::io(path, "parse", io::Error::new(io::ErrorKind::InvalidData, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = RemoteUrl::parse("s3://my-bucket/a/b/").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("my-bucket", "a/b"));
        assert_eq!(u.key("packs/1.ab"), "a/b/packs/1.ab");
        assert_eq!(u.to_string(), "s3://my-bucket/a/b");
        let u = RemoteUrl::parse("s3://bkt").unwrap();
        assert_eq!(u.key("x"), "x");
        for bad in [
            "/tmp/x",
            "s3://",
            "s3://B",
            "s3://ab",
            "s3://bkt/a//b",
            "s3://bkt/../x",
            "s3://bkt/~alice/x",
            "s3://bkt/a b",
        ] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad}");
        }
        let s = RemoteSettings::new(RemoteUrl::parse("s3://bkt/p").unwrap());
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"{"url":"s3://bkt/p","cache_bytes":0}"#);
        assert_eq!(serde_json::from_str::<RemoteSettings>(&j).unwrap(), s);
    }
}
