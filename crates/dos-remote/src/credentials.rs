//! S3 credentials: from the standard environment variables, else from the standard AWS files
//! (`~/.aws/credentials`, profile `AWS_PROFILE` or `default`). Never written anywhere.

use std::path::Path;

/// An access key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

impl Credentials {
    /// Credentials from `env` (a lookup of environment variables the program passes in), else
    /// from the AWS credentials file under `home` (`AWS_SHARED_CREDENTIALS_FILE` overrides its
    /// place). `None` when neither has any.
    pub fn find(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Option<Self> {
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Some(Self {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
            });
        }
        let file = match env("AWS_SHARED_CREDENTIALS_FILE") {
            Some(f) => std::path::PathBuf::from(f),
            None => home?.join(".aws").join("credentials"),
        };
        let text = std::fs::read_to_string(file).ok()?;
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
        Self::from_ini(&text, &profile)
    }

    /// The keys of `profile` in the text of an AWS credentials file.
    pub fn from_ini(text: &str, profile: &str) -> Option<Self> {
        let mut in_profile = false;
        let (mut id, mut secret, mut token) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_profile = section.trim() == profile;
                continue;
            }
            if !in_profile {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                let v = v.trim().to_string();
                match k.trim() {
                    "aws_access_key_id" => id = Some(v),
                    "aws_secret_access_key" => secret = Some(v),
                    "aws_session_token" => token = Some(v),
                    _ => {}
                }
            }
        }
        Some(Self {
            access_key_id: id?,
            secret_access_key: secret?,
            session_token: token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_first_then_file() {
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AK".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("SK".to_string()),
            _ => None,
        };
        let c = Credentials::find(&env, None).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AK", "SK")
        );
        let ini = "[default]\naws_access_key_id = A1\naws_secret_access_key=S1\n\n[other]\n\
                   aws_access_key_id=A2\naws_secret_access_key=S2\naws_session_token=T2\n";
        let d = Credentials::from_ini(ini, "default").unwrap();
        assert_eq!((d.access_key_id.as_str(), d.session_token), ("A1", None));
        let o = Credentials::from_ini(ini, "other").unwrap();
        assert_eq!(o.session_token.as_deref(), Some("T2"));
        assert!(Credentials::from_ini(ini, "missing").is_none());
        assert!(!format!("{o:?}").contains("S2"));
    }
}
