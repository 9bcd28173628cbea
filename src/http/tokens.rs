//! Bearer tokens: the admin token, and the caller tokens that may guard the
//! decision API when its listener is reachable from beyond the pod.
//!
//! Tokens are kept as SHA-256 digests and compared in constant time over
//! all of them, so neither a token's content, its length, nor which of
//! several tokens matched shows in the response time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::telemetry::RateLimit;

/// Shorter tokens are accepted with a warning at start-up: 32 bytes is
/// what `openssl rand -hex 16` gives, and guessing is the attack.
pub const MIN_TOKEN_BYTES: usize = 32;

/// The token a request presents as `Authorization: Bearer <token>`. The
/// scheme is case-insensitive (RFC 7235); surrounding blanks are ignored.
pub fn presented_bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A set of accepted tokens, as digests.
#[derive(Clone, Default)]
pub struct TokenSet(Vec<[u8; 32]>);

impl TokenSet {
    /// The set of `tokens` (each trimmed; empty ones ignored).
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            tokens
                .into_iter()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(digest)
                .collect(),
        )
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens; every token is compared.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented.trim());
        let mut any = Choice::from(0);
        for token in &self.0 {
            any |= token.ct_eq(&presented);
        }
        bool::from(any)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Unreadable.
    #[error("cannot read token file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No token in it.
    #[error("token file `{0}` holds no token (one per line; `#` starts a comment)")]
    Empty(PathBuf),
}

/// The caller tokens, read from a file (one per line, blank lines and
/// `#` comments ignored) and re-read on reload, so a token can be rotated
/// by adding the new one, moving callers, then removing the old one.
pub struct CallerTokens {
    path: PathBuf,
    tokens: ArcSwap<TokenSet>,
    failures: RateLimit,
}

impl CallerTokens {
    /// Reads the file; refuses a file without tokens.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let tokens = read_token_file(path)?;
        warn_if_short(&tokens.1, "caller token", path);
        Ok(Self {
            path: path.to_path_buf(),
            tokens: ArcSwap::from_pointee(tokens.0),
            failures: RateLimit::new(Duration::from_secs(1)),
        })
    }

    /// Re-reads the file; on error the tokens in force stay.
    pub fn reload(&self) -> Result<usize, TokenFileError> {
        let (tokens, texts) = read_token_file(&self.path)?;
        warn_if_short(&texts, "caller token", &self.path);
        let count = tokens.len();
        self.tokens.store(Arc::new(tokens));
        Ok(count)
    }

    /// Whether the request carries one of the tokens; failures are logged
    /// at WARN, at most once a second.
    pub fn admits(&self, headers: &HeaderMap, client: Option<&str>) -> bool {
        let admitted = presented_bearer(headers).is_some_and(|t| self.tokens.load().accepts(t));
        if !admitted {
            if let Some(suppressed) = self.failures.check() {
                tracing::warn!(
                    client = client.unwrap_or("unknown"),
                    similar_failures_suppressed = suppressed,
                    "decision API called without a valid caller token"
                );
            }
        }
        admitted
    }
}

/// The tokens in a token file and their texts (for the length warning).
fn read_token_file(path: &Path) -> Result<(TokenSet, Vec<String>), TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let texts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect();
    if texts.is_empty() {
        return Err(TokenFileError::Empty(path.to_path_buf()));
    }
    Ok((TokenSet::new(texts.iter().map(String::as_str)), texts))
}

/// Logs a start-up warning for tokens shorter than [`MIN_TOKEN_BYTES`].
pub fn warn_if_short(tokens: &[String], what: &str, source: &Path) {
    let short = tokens.iter().filter(|t| t.len() < MIN_TOKEN_BYTES).count();
    if short > 0 {
        tracing::warn!(
            short,
            source = %source.display(),
            min_bytes = MIN_TOKEN_BYTES,
            "{what} shorter than {MIN_TOKEN_BYTES} bytes: generate one with `openssl rand -hex 32`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_blanks_are_ignored() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", "  Bearer\tabc"] {
            assert_eq!(presented_bearer(&headers(value)), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", "abc"] {
            assert_eq!(presented_bearer(&headers(value)), None, "{value}");
        }
    }

    #[test]
    fn any_token_of_the_set_is_accepted_and_nothing_else() {
        let set = TokenSet::new(["first-token", " second-token \n", ""]);
        assert_eq!(set.len(), 2);
        assert!(set.accepts("first-token"));
        assert!(set.accepts("second-token"));
        assert!(!set.accepts("first-toke"));
        assert!(!set.accepts("first-token-and-more"));
        assert!(!set.accepts(""));
        assert!(!TokenSet::default().accepts(""));
    }
}
