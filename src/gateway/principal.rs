//! Who is asking: the principal of a gateway request, from a verified JWT
//! or from a header a trusted gateway set. Nothing else in the request can
//! name or widen the principal.

use axum::http::HeaderMap;
use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde_json::Value;

use super::jwt::{Claims, JwtVerifier, TokenError};

/// How the principal is established.
pub enum Authenticator {
    /// `Authorization: Bearer <jwt>`, verified.
    Jwt(JwtVerifier),
    /// A header set by a gateway that authenticated the caller already.
    /// Trusts the gateway: whoever reaches the sidecar directly can name
    /// any principal (keep the sidecar reachable from the gateway only).
    TrustedHeader(axum::http::HeaderName),
}

/// The authenticated principal.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The principal's uid.
    pub uid: EntityUid,
    /// The token's claims (empty with a trusted header).
    pub claims: Claims,
}

impl Authenticator {
    /// The principal of a request with `headers`, as an entity of `ty`.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        ty: &EntityTypeName,
    ) -> Result<Identity, TokenError> {
        match self {
            Self::Jwt(verifier) => {
                let token = bearer(headers).ok_or(TokenError::Missing)?;
                let claims = verifier.verify(token)?;
                let id = claims
                    .get(&verifier.principal_claim)
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| TokenError::MissingClaim(verifier.principal_claim.clone()))?;
                Ok(Identity {
                    uid: EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id)),
                    claims,
                })
            }
            Self::TrustedHeader(name) => {
                let id = headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| TokenError::MissingHeader(name.to_string()))?;
                Ok(Identity {
                    uid: EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id)),
                    claims: Claims::default(),
                })
            }
        }
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
