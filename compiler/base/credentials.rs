//! What a credential looks like, whatever the setting it is written
//! under: the input stage refuses every value that does (a literal secret
//! would be written into the site's files). Each pattern is narrow, so
//! that ordinary text does not match:
//!
//! - a PEM private key: `-----BEGIN ... PRIVATE KEY-----` (RSA, EC,
//!   OpenSSH, PKCS#8, encrypted) or a PGP private key block;
//! - an AWS access key id: `AKIA` or `ASIA` and 16 upper-case letters or
//!   digits, as a word of its own;
//! - a JSON Web Token: two base64url segments that each start with `eyJ`
//!   (`{"`), at least 10 characters long, and a third, joined by dots;
//! - an API key in the `sk-...` form (OpenAI, Anthropic and others): at
//!   least 32 characters after `sk-`, one dash-separated part of them at
//!   least 20 long mixing letters and digits (so `sk-learn-classifier`
//!   is not one);
//! - a GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 letters
//!   or digits, or `github_pat_`) and a Google API key (`AIza` and 35);
//! - a URL with a password: `scheme://user:password@host` (a user alone
//!   is not one);
//! - a Google service-account key: JSON with a `"private_key"`, as is or
//!   base64-encoded (as `GOOGLE_STORAGE_SERVICE_ACCOUNT_JSON_BASE64`
//!   takes it).

/// A kind of credential a value looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    PrivateKey,
    AwsAccessKey,
    Jwt,
    ApiKey,
    GithubToken,
    GoogleApiKey,
    UrlPassword,
    ServiceAccountKey,
}

impl Credential {
    /// What the value looks like, for "looks like ...".
    pub fn what(self) -> &'static str {
        match self {
            Credential::PrivateKey => "a private key (a PEM `PRIVATE KEY` block)",
            Credential::AwsAccessKey => "an AWS access key id (`AKIA...`)",
            Credential::Jwt => "a JSON Web Token (`eyJ...`)",
            Credential::ApiKey => "an API key (`sk-...`)",
            Credential::GithubToken => "a GitHub token",
            Credential::GoogleApiKey => "a Google API key (`AIza...`)",
            Credential::UrlPassword => "a URL with a password in it (`user:password@`)",
            Credential::ServiceAccountKey => {
                "a service-account key (JSON with a `private_key`, maybe base64-encoded)"
            }
        }
    }
}

/// A test of a value, and the kind of credential it finds.
type Check = (fn(&str) -> bool, Credential);

/// The first kind of credential `value` looks like, if any.
pub fn credential_in(value: &str) -> Option<Credential> {
    let checks: [Check; 8] = [
        (has_private_key, Credential::PrivateKey),
        (has_service_account_key, Credential::ServiceAccountKey),
        (has_aws_access_key, Credential::AwsAccessKey),
        (has_jwt, Credential::Jwt),
        (has_sk_key, Credential::ApiKey),
        (has_github_token, Credential::GithubToken),
        (has_google_api_key, Credential::GoogleApiKey),
        (url_has_password, Credential::UrlPassword),
    ];
    checks.iter().find(|(f, _)| f(value)).map(|(_, c)| *c)
}

fn has_private_key(v: &str) -> bool {
    v.split("-----BEGIN ").skip(1).any(|after| {
        after.split_once("-----").is_some_and(|(header, _)| {
            header.ends_with("PRIVATE KEY") || header.ends_with("PRIVATE KEY BLOCK")
        })
    })
}

/// Words of `v`: maximal runs of the characters `word` accepts, with
/// their start.
fn words(v: &str, word: fn(u8) -> bool) -> impl Iterator<Item = (usize, &str)> {
    let bytes = v.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !word(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() && word(bytes[i]) {
            i += 1;
        }
        Some((start, &v[start..i]))
    })
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn has_aws_access_key(v: &str) -> bool {
    words(v, alnum).any(|(_, w)| {
        w.len() == 20
            && (w.starts_with("AKIA") || w.starts_with("ASIA"))
            && w.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })
}

fn has_jwt(v: &str) -> bool {
    words(v, |b| token_char(b) || b == b'.').any(|(_, w)| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && parts[..2]
                .iter()
                .all(|p| p.len() >= 10 && p.starts_with("eyJ"))
    })
}

fn has_sk_key(v: &str) -> bool {
    words(v, token_char).any(|(_, w)| {
        let Some(rest) = w.strip_prefix("sk-") else {
            return false;
        };
        let mixed = |p: &&str| {
            p.len() >= 20
                && p.bytes().any(|b| b.is_ascii_digit())
                && p.bytes().any(|b| b.is_ascii_alphabetic())
        };
        rest.len() >= 32 && rest.split('-').any(|p| mixed(&p))
    })
}

fn has_github_token(v: &str) -> bool {
    words(v, |b| alnum(b) || b == b'_').any(|(_, w)| {
        let classic = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"].iter().any(|p| {
            w.strip_prefix(p)
                .is_some_and(|r| r.len() >= 36 && r.bytes().all(alnum))
        });
        classic || w.strip_prefix("github_pat_").is_some_and(|r| r.len() >= 40)
    })
}

fn has_google_api_key(v: &str) -> bool {
    words(v, token_char).any(|(_, w)| w.len() == 39 && w.starts_with("AIza"))
}

/// Whether `value` is a URL whose authority carries a password
/// (`scheme://user:password@host`).
pub fn url_has_password(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .is_some_and(|(_, password)| !password.is_empty())
}

/// JSON holding a `"private_key"`, as it is or base64-encoded (standard
/// or URL-safe alphabet, whitespace ignored, at least 64 characters).
fn has_service_account_key(v: &str) -> bool {
    const KEY: &[u8] = b"\"private_key\"";
    let contains = |hay: &[u8]| hay.windows(KEY.len()).any(|w| w == KEY);
    if contains(v.as_bytes()) {
        return true;
    }
    let compact: Vec<u8> = v.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    compact.len() >= 64 && decode_base64(&compact).is_some_and(|d| contains(&d))
}

/// Standard or URL-safe base64, padded or not; `None` when `s` is not.
fn decode_base64(s: &[u8]) -> Option<Vec<u8>> {
    let s = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in s {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` in standard base64.
    fn base64(text: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn credentials_are_recognized() {
        let sa = r#"{"type": "service_account", "project_id": "clinic", "private_key_id": "0a1b", "private_key": "..."}"#;
        let cases: [(Credential, &[&str]); 8] = [
            (
                Credential::PrivateKey,
                &[
                    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
                    "-----BEGIN OPENSSH PRIVATE KEY-----",
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                    "-----BEGIN PGP PRIVATE KEY BLOCK-----",
                ],
            ),
            (
                Credential::AwsAccessKey,
                &["AKIAIOSFODNN7EXAMPLE", "key=ASIAY34FZKBOKMUTVV7A;"],
            ),
            (
                Credential::Jwt,
                &[
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbGluaWMifQ.c2lnbmF0dXJl",
                    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.",
                ],
            ),
            (
                Credential::ApiKey,
                &[
                    "sk-proj-4f9A1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvWx",
                    "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-abc",
                    "sk-1234567890abcdefghijklmnopqrstuvwxyzABCD",
                ],
            ),
            (
                Credential::GithubToken,
                &[
                    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
                    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
                ],
            ),
            (
                Credential::GoogleApiKey,
                &["AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"],
            ),
            (
                Credential::UrlPassword,
                &[
                    "redis://:hunter2@redis:6379/1",
                    "https://user:p%40ss@host/path?x=1",
                ],
            ),
            (Credential::ServiceAccountKey, &[sa]),
        ];
        for (kind, values) in cases {
            for value in values {
                assert_eq!(credential_in(value), Some(kind), "{value}");
            }
        }
        let encoded = base64(sa);
        assert_eq!(credential_in(&encoded), Some(Credential::ServiceAccountKey));
        let url_safe = encoded.replace('+', "-").replace('/', "_");
        assert_eq!(
            credential_in(&url_safe),
            Some(Credential::ServiceAccountKey)
        );
    }

    #[test]
    fn ordinary_values_are_not_credentials() {
        for value in [
            "",
            "INFO",
            "Dify on one 4 GiB edge box: completion API for the LAN, console for admins",
            "https://git.clinics.example.org/platform/dify-fleet.git",
            "http://milvus:19530",
            "https://user@host/path",
            "https://host/a:b@c",
            "https://host/?next=http://a:b@c",
            "https://user:@host/",
            "user:pass@host",
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----",
            "AKIA",
            "AKIAIOSFODNN7EXAMPLEX",
            "akiaiosfodnn7example",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJ.eyJ.x",
            "sk-learn-based-classification-service-for-clinics",
            "sk-2024",
            "task-1234567890abcdefghijklmnopqrstuvwxyzABCD",
            "ghp_short",
            "private_key",
            "registry.clinics.example.org/dify",
            "10.20.3.0/24",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            // Base64 of something without a private key.
            "eyJ0eXBlIjogInNlcnZpY2VfYWNjb3VudCIsICJwcm9qZWN0X2lkIjogImNsaW5pYyJ9",
        ] {
            assert_eq!(credential_in(value), None, "{value}");
        }
    }
}
