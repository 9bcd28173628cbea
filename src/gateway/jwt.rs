//! Bearer tokens: the keys that may sign them (a JWKS file, PEM public
//! keys, an HS256 secret file) and their verification with `jsonwebtoken`.
//!
//! A token is accepted only when its header names an algorithm of one of
//! our keys (RS256, ES256, EdDSA, HS256; `none` never), a key of that
//! algorithm (with the token's `kid`, when both have one) verifies its
//! signature, and its `iss`, `aud` and `exp` are present and right (`exp`
//! and `nbf` with a small leeway). Keys are read from files only when the
//! gateway reloads, never on the request path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::settings::JwtSettings;

/// One key that may sign tokens.
struct Key {
    /// The JWK's `kid` (`None` for PEM files and the secret).
    kid: Option<String>,
    /// The one algorithm it verifies.
    alg: Algorithm,
    key: DecodingKey,
}

/// A token's claims, shared between the requests that present it.
pub type Claims = Arc<Map<String, Value>>;

/// Tokens already verified, by the SHA-256 of their text: a client sends
/// the same token with every request, and an RS256, ES256 or EdDSA check
/// costs several decisions. An entry is used only until the token's `exp`
/// (with the leeway), and the whole cache goes with the keys it was
/// verified with (a reload builds a new verifier).
struct Verified {
    /// A std mutex: held only to look up, insert or clear, never across an await.
    tokens: Mutex<HashMap<[u8; 32], (Claims, u64)>>,
}

/// Entries kept before the cache is emptied.
const VERIFIED_CAP: usize = 4096;

/// The keys and the claims every token must carry.
pub struct JwtVerifier {
    keys: Vec<Key>,
    verified: Verified,
    leeway: u64,
    /// One validation per algorithm in use (built once, not per request).
    validations: Vec<(Algorithm, Validation)>,
    /// The claim naming the principal.
    pub principal_claim: String,
}

/// Why a token was refused; the message tells an expired token apart from
/// a bad signature. Never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("a bearer token is required (`Authorization: Bearer <jwt>`)")]
    Missing,
    /// The trusted principal header is absent or empty.
    #[error("the trusted principal header `{0}` is missing")]
    MissingHeader(String),
    /// The token's `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` is still ahead.
    #[error("the token is not valid yet (`nbf`)")]
    NotYetValid,
    /// No key of ours verifies the signature.
    #[error("the token's signature does not verify with any configured key")]
    BadSignature,
    /// The token is for another audience.
    #[error("the token's audience (`aud`) is not this service's")]
    WrongAudience,
    /// The token is from another issuer.
    #[error("the token's issuer (`iss`) is not the configured one")]
    WrongIssuer,
    /// A required claim is absent or of the wrong kind.
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
    /// An algorithm none of our keys has (`none` included), or a malformed token.
    #[error("the token is malformed or signed with an algorithm no configured key uses")]
    Malformed,
}

/// Why the keys could not be loaded (start-up fails, a reload keeps the
/// last good keys).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct KeyError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl JwtVerifier {
    /// Reads every configured key file.
    pub fn load(settings: &JwtSettings) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if let Some(path) = &settings.jwks {
            keys.extend(jwks_keys(path)?);
        }
        for path in &settings.public_keys {
            keys.push(pem_key(path)?);
        }
        if let Some(path) = &settings.hs256_secret_file {
            let secret = read(path)?;
            let secret = trim_ascii(&secret);
            if secret.len() < 32 {
                return Err(KeyError {
                    path: path.display().to_string(),
                    message: "an HS256 secret must be at least 32 bytes".into(),
                });
            }
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            });
        }
        if keys.is_empty() {
            return Err(KeyError {
                path: settings
                    .jwks
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string()),
                message: "no signing key configured".into(),
            });
        }
        let mut validations: Vec<(Algorithm, Validation)> = Vec::new();
        for key in &keys {
            if validations.iter().any(|(alg, _)| *alg == key.alg) {
                continue;
            }
            let mut validation = Validation::new(key.alg);
            validation.leeway = settings.leeway_secs;
            validation.validate_nbf = true;
            validation.set_issuer(&[settings.issuer.as_str()]);
            validation.set_audience(&[settings.audience.as_str()]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validations.push((key.alg, validation));
        }
        Ok(Self {
            keys,
            verified: Verified {
                tokens: Mutex::new(HashMap::new()),
            },
            leeway: settings.leeway_secs,
            validations,
            principal_claim: settings.principal_claim.clone(),
        })
    }

    /// How many keys are loaded.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `token` (or finds it verified and not expired); its claims
    /// on success.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Ok(tokens) = self.verified.tokens.lock() {
            if let Some((claims, exp)) = tokens.get(&digest) {
                if now <= exp.saturating_add(self.leeway) {
                    return Ok(claims.clone());
                }
            }
        }
        let claims = Arc::new(self.verify_signed(token)?);
        // `exp` is required, so a verified token has one.
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            if let Ok(mut tokens) = self.verified.tokens.lock() {
                if tokens.len() >= VERIFIED_CAP {
                    tokens.clear();
                }
                tokens.insert(digest, (claims.clone(), exp));
            }
        }
        Ok(claims)
    }

    /// Verifies `token`'s signature and claims.
    fn verify_signed(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, v)| v)
            .ok_or(TokenError::Malformed)?;
        let named = |key: &&Key| match (&header.kid, &key.kid) {
            (Some(wanted), Some(kid)) => wanted == kid,
            _ => true,
        };
        let mut outcome = Err(TokenError::BadSignature);
        for key in self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(named)
        {
            match decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => {
                    outcome = Err(token_error(error.kind()));
                    // The signature verified and a claim failed: no other
                    // key can make this token good.
                    if outcome != Err(TokenError::BadSignature) {
                        break;
                    }
                }
            }
        }
        outcome
    }
}

fn token_error(kind: &jsonwebtoken::errors::ErrorKind) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        _ => TokenError::Malformed,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|error| KeyError {
        path: path.display().to_string(),
        message: format!("cannot read: {error}"),
    })
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The keys of a JWKS file: RSA (RS256), P-256 (ES256) and Ed25519
/// (EdDSA); a key whose `alg` says otherwise, or a symmetric key, is refused.
fn jwks_keys(path: &Path) -> Result<Vec<Key>, KeyError> {
    let bad = |message: String| KeyError {
        path: path.display().to_string(),
        message,
    };
    let text = read(path)?;
    let set: JwkSet = serde_json::from_slice(&text).map_err(|e| bad(format!("not a JWKS: {e}")))?;
    set.keys
        .iter()
        .enumerate()
        .map(|(index, jwk)| {
            let natural = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                _ => {
                    return Err(bad(format!(
                        "key {index}: only RSA, P-256 and Ed25519 keys are taken (HS256 secrets go in jwt_hs256_secret_file)"
                    )))
                }
            };
            let stated = jwk.common.key_algorithm.map(|alg| match alg {
                KeyAlgorithm::RS256 => Some(Algorithm::RS256),
                KeyAlgorithm::ES256 => Some(Algorithm::ES256),
                KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
                _ => None,
            });
            if stated.is_some_and(|alg| alg != Some(natural)) {
                return Err(bad(format!(
                    "key {index}: its `alg` does not fit its key type (RS256, ES256 and EdDSA are taken)"
                )));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("key {index}: {e}")))?;
            Ok(Key {
                kid: jwk.common.key_id.clone(),
                alg: natural,
                key,
            })
        })
        .collect()
}

/// A PEM public key: RSA (RS256), P-256 (ES256) or Ed25519 (EdDSA).
fn pem_key(path: &Path) -> Result<Key, KeyError> {
    let pem = read(path)?;
    let (alg, key) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        (Algorithm::RS256, key)
    } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        (Algorithm::ES256, key)
    } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        (Algorithm::EdDSA, key)
    } else {
        return Err(KeyError {
            path: path.display().to_string(),
            message: "not a PEM RSA, P-256 or Ed25519 public key".into(),
        });
    };
    // A PEM file names no `kid`: it is tried for any token of its algorithm.
    Ok(Key {
        kid: None,
        alg,
        key,
    })
}
