//! Every gateway setting in one place: a clap `Args` flattened into
//! `serve` (and `check`) and the `[gateway]` table of the config file, the
//! flag winning over the file field by field. Validated into
//! [`GatewayConfig`] once at start; no I/O here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

/// Where the ext_authz HTTP door answers unless configured otherwise.
pub const DEFAULT_EXT_AUTHZ_PREFIX: &str = "/ext_authz";
/// The principal's entity type unless configured otherwise.
pub const DEFAULT_PRINCIPAL_TYPE: &str = "User";
/// The JWT claim naming the principal unless configured otherwise.
pub const DEFAULT_PRINCIPAL_CLAIM: &str = "sub";
/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// The most clock skew a token may be allowed.
const MAX_LEEWAY_SECS: u64 = 600;

/// The gateway flags, and the `[gateway]` table (same names, no prefix).
/// Every value is optional so that a flag can fall back to the file.
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayArgs {
    /// Route map (TOML): gateway requests to Cedar action, resource and
    /// context. Turns the gateway doors on [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_ROUTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<PathBuf>,
    /// Entity type of the principal a gateway request names [default: User].
    #[arg(long, env = "CEDAR_SIDECAR_PRINCIPAL_TYPE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<String>,
    /// Take the principal's id from this header, set by a gateway that
    /// already authenticated the caller (trusts the gateway: anyone who can
    /// reach the sidecar directly can name any principal) [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_TRUSTED_PRINCIPAL_HEADER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_principal_header: Option<String>,
    /// JWKS file of keys that sign bearer tokens (RS256, ES256, EdDSA).
    #[arg(long, env = "CEDAR_SIDECAR_JWT_JWKS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_jwks: Option<PathBuf>,
    /// PEM public key files (RSA, P-256 or Ed25519), comma-separated.
    #[arg(long, env = "CEDAR_SIDECAR_JWT_PUBLIC_KEYS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_public_keys: Option<Vec<PathBuf>>,
    /// File holding the HS256 shared secret.
    #[arg(long, env = "CEDAR_SIDECAR_JWT_HS256_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// The `iss` every token must carry (required with JWT keys).
    #[arg(long, env = "CEDAR_SIDECAR_JWT_ISSUER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_issuer: Option<String>,
    /// The `aud` every token must carry (required with JWT keys).
    #[arg(long, env = "CEDAR_SIDECAR_JWT_AUDIENCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds [default: 30].
    #[arg(long, env = "CEDAR_SIDECAR_JWT_LEEWAY_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_leeway_secs: Option<u64>,
    /// The claim whose value is the principal's entity id [default: sub].
    #[arg(long, env = "CEDAR_SIDECAR_JWT_PRINCIPAL_CLAIM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_principal_claim: Option<String>,
    /// Path prefix of the Envoy ext_authz HTTP door [default: /ext_authz].
    #[arg(long, env = "CEDAR_SIDECAR_EXT_AUTHZ_PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_authz_prefix: Option<String>,
    /// Serve Envoy's ext_authz gRPC service on this address [default: none].
    #[arg(long, env = "CEDAR_SIDECAR_GRPC_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<SocketAddr>,
}

/// Where the principal of a gateway request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalSource {
    /// A verified JWT in `Authorization: Bearer`.
    Jwt(JwtSettings),
    /// A header set by a gateway that authenticated the caller.
    TrustedHeader(String),
}

/// How bearer tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// JWKS file.
    pub jwks: Option<PathBuf>,
    /// PEM public keys.
    pub public_keys: Vec<PathBuf>,
    /// HS256 secret file.
    pub hs256_secret_file: Option<PathBuf>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Allowed clock skew.
    pub leeway_secs: u64,
    /// The claim naming the principal.
    pub principal_claim: String,
}

/// The validated gateway settings; `None` from [`GatewayArgs::config`]
/// when no route map is configured (the doors are then off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The route map file.
    pub routes: PathBuf,
    /// The principal's entity type.
    pub principal_type: String,
    /// Where the principal comes from.
    pub principal: PrincipalSource,
    /// The ext_authz HTTP door's prefix (starts with `/`, no trailing `/`).
    pub ext_authz_prefix: String,
    /// The gRPC listener, if any.
    pub grpc_listen: Option<SocketAddr>,
}

impl GatewayArgs {
    /// The validated settings: `Ok(None)` without a route map; an error
    /// names the key (`gateway.<key>`) and what is wrong.
    pub fn config(&self) -> Result<Option<GatewayConfig>, (&'static str, String)> {
        let jwt_given = self.jwt_jwks.is_some()
            || self.jwt_public_keys.as_ref().is_some_and(|k| !k.is_empty())
            || self.jwt_hs256_secret_file.is_some();
        let Some(routes) = self.routes.clone() else {
            if jwt_given || self.trusted_principal_header.is_some() || self.grpc_listen.is_some() {
                return Err((
                    "gateway.routes",
                    "is required when other gateway settings are given".into(),
                ));
            }
            return Ok(None);
        };
        let principal = match (&self.trusted_principal_header, jwt_given) {
            (Some(_), true) => {
                return Err((
                    "gateway.trusted_principal_header",
                    "cannot be combined with JWT keys: choose one source of the principal".into(),
                ))
            }
            (Some(header), false) => {
                if axum::http::HeaderName::from_bytes(header.trim().as_bytes()).is_err() {
                    return Err((
                        "gateway.trusted_principal_header",
                        format!("`{header}` is not a header name"),
                    ));
                }
                PrincipalSource::TrustedHeader(header.trim().to_ascii_lowercase())
            }
            (None, false) => {
                return Err((
                    "gateway.jwt_jwks",
                    "the gateway needs a principal: JWT keys (jwt_jwks, jwt_public_keys or jwt_hs256_secret_file) or trusted_principal_header".into(),
                ))
            }
            (None, true) => {
                let required = |value: &Option<String>, key| match value {
                    Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                    _ => Err((key, "is required with JWT keys".to_string())),
                };
                let leeway_secs = self.jwt_leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS);
                if leeway_secs > MAX_LEEWAY_SECS {
                    return Err((
                        "gateway.jwt_leeway_secs",
                        format!("must be at most {MAX_LEEWAY_SECS} (clock skew, not a token lifetime)"),
                    ));
                }
                PrincipalSource::Jwt(JwtSettings {
                    jwks: self.jwt_jwks.clone(),
                    public_keys: self.jwt_public_keys.clone().unwrap_or_default(),
                    hs256_secret_file: self.jwt_hs256_secret_file.clone(),
                    issuer: required(&self.jwt_issuer, "gateway.jwt_issuer")?,
                    audience: required(&self.jwt_audience, "gateway.jwt_audience")?,
                    leeway_secs,
                    principal_claim: self
                        .jwt_principal_claim
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PRINCIPAL_CLAIM.to_string()),
                })
            }
        };
        let prefix = self
            .ext_authz_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_EXT_AUTHZ_PREFIX.to_string());
        let prefix = prefix.trim_end_matches('/').to_string();
        // Plain segments only: axum reads `{`, `:` and `*` as captures.
        let plain = prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~'));
        let segments_ok = prefix
            .split('/')
            .skip(1)
            .all(|s| !s.is_empty() && s != "." && s != "..");
        if !prefix.starts_with('/') || prefix.starts_with("/v1") || !plain || !segments_ok {
            return Err((
                "gateway.ext_authz_prefix",
                format!("`{prefix}` must be a path of plain segments (letters, digits, `-_.~`) and not be under /v1"),
            ));
        }
        Ok(Some(GatewayConfig {
            routes,
            principal_type: self
                .principal_type
                .clone()
                .unwrap_or_else(|| DEFAULT_PRINCIPAL_TYPE.to_string()),
            principal,
            ext_authz_prefix: prefix,
            grpc_listen: self.grpc_listen,
        }))
    }
}
