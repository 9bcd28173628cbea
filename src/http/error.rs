//! The one table from errors to HTTP responses: status + stable snake_case
//! code + message, always as JSON `{"code","message"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::wire::ErrorBody;
use crate::engine::{RequestEntityError, RequestError};
use crate::sync::SyncError;

/// Everything the API can answer with besides a decision.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON of the wrong shape, or an unparsable entity uid.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request does not fit the schema.
    #[error("{0}")]
    RequestSchemaViolation(String),
    /// An entity supplied with the request is invalid.
    #[error("{0}")]
    InvalidEntity(String),
    /// The request's entities break the operator's rules for them (mode,
    /// types, count, duplicates, stored uids).
    #[error(transparent)]
    RequestEntities(RequestEntityError),
    /// Missing or wrong caller token on the decision API.
    #[error("a valid caller token is required (`Authorization: Bearer <token>`)")]
    CallerUnauthorized,
    /// More batch items than allowed.
    #[error("a batch holds at most {max} requests; this one has {got}")]
    BatchTooLarge {
        /// The configured maximum.
        max: usize,
        /// What the client sent.
        got: usize,
    },
    /// The body did not arrive within the body read timeout.
    #[error("the request body did not arrive within {0} ms")]
    BodyTimeout(u64),
    /// The body is larger than the configured limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No such route.
    #[error("no route for `{0}`")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method `{method}` is not allowed on `{path}`")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// Policies or entities are not loaded yet: fail closed.
    #[error("{0}")]
    NotReady(String),
    /// The entity data is older than the caller may accept: out of contact
    /// with the source for too long, or a requested revision not reached.
    #[error("{0}")]
    Stale(String),
    /// Compare-and-set on the entity revision failed.
    #[error("{0}")]
    RevisionConflict(String),
    /// The named entity does not exist.
    #[error("no entity `{0}`")]
    EntityNotFound(String),
    /// A template link is malformed or does not fit the templates.
    #[error("{0}")]
    InvalidLink(String),
    /// The named template link does not exist.
    #[error("no template link `{0}`")]
    LinkNotFound(String),
    /// The entity source (Redis) could not be reached; the cause is logged.
    #[error("the entity store is unavailable")]
    SourceUnavailable,
    /// Too many requests in flight.
    #[error("too many requests in flight; retry shortly")]
    Overloaded,
    /// The request took longer than the configured timeout.
    #[error("the request took longer than the configured timeout")]
    Timeout,
    /// Missing or wrong admin token.
    #[error("a valid admin token is required (`Authorization: Bearer <token>`)")]
    Unauthorized,
    /// Admin endpoints are off because no token is configured.
    #[error(
        "admin endpoints are disabled: configure CEDAR_SIDECAR_ADMIN_TOKEN or --admin-token-file"
    )]
    AdminDisabled,
    /// A reload was refused; the last good set keeps serving.
    #[error("{0}")]
    ReloadFailed(String),
    /// The policies' residual for a plan holds something a plan cannot say.
    #[error("{0}")]
    PlanUnsupported(String),
    /// A bug or an environment failure; details are logged, not echoed.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// HTTP status and stable code for this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::RequestSchemaViolation(_) => {
                (StatusCode::BAD_REQUEST, "request_schema_violation")
            }
            Self::InvalidEntity(_) => (StatusCode::BAD_REQUEST, "invalid_entity"),
            Self::RequestEntities(error) => (StatusCode::BAD_REQUEST, request_entity_code(error)),
            Self::CallerUnauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BatchTooLarge { .. } => (StatusCode::BAD_REQUEST, "batch_too_large"),
            Self::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Stale(_) => (StatusCode::SERVICE_UNAVAILABLE, "stale"),
            Self::RevisionConflict(_) => (StatusCode::CONFLICT, "revision_conflict"),
            Self::EntityNotFound(_) => (StatusCode::NOT_FOUND, "entity_not_found"),
            Self::InvalidLink(_) => (StatusCode::BAD_REQUEST, "invalid_link"),
            Self::LinkNotFound(_) => (StatusCode::NOT_FOUND, "link_not_found"),
            Self::SourceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "source_unavailable"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::AdminDisabled => (StatusCode::FORBIDDEN, "admin_disabled"),
            Self::ReloadFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "reload_failed"),
            Self::PlanUnsupported(_) => (StatusCode::UNPROCESSABLE_ENTITY, "plan_unsupported"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The JSON body `{"code","message"}`.
    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.status_and_code();
        ErrorBody {
            code,
            message: self.to_string(),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::SchemaViolation(m) => Self::RequestSchemaViolation(m),
            RequestError::InvalidEntity(m) => Self::InvalidEntity(m),
            // A malformed entity is the same error whichever the mode.
            RequestError::EntitiesRefused(RequestEntityError::Invalid(m)) => Self::InvalidEntity(m),
            RequestError::EntitiesRefused(refused) => Self::RequestEntities(refused),
        }
    }
}

/// The stable code of each way request entities are refused.
fn request_entity_code(error: &RequestEntityError) -> &'static str {
    match error {
        RequestEntityError::Disabled => "request_entities_disabled",
        RequestEntityError::TooMany { .. } => "too_many_request_entities",
        RequestEntityError::Duplicate(_) => "duplicate_request_entity",
        RequestEntityError::Conflict(_) => "request_entity_conflict",
        RequestEntityError::TypeNotAllowed { .. }
        | RequestEntityError::ParentNotAllowed { .. }
        | RequestEntityError::PrincipalNotStored(_)
        | RequestEntityError::NamedByPolicy(_) => "request_entity_not_allowed",
        RequestEntityError::Invalid(_) => "invalid_entity",
    }
}

impl From<SyncError> for ApiError {
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::Conflict { .. } => Self::RevisionConflict(error.to_string()),
            SyncError::TooLarge { .. } | SyncError::Empty => {
                Self::InvalidRequest(error.to_string())
            }
            SyncError::MissingParents(_) => Self::InvalidEntity(error.to_string()),
            SyncError::Redis(_)
            | SyncError::Config(_)
            | SyncError::Malformed(_)
            | SyncError::ReadOnly { .. }
            | SyncError::Moved(_) => {
                // An internal cause: logged, never echoed.
                tracing::error!(%error, "entity store write failed");
                Self::SourceUnavailable
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Bad input is the caller's business: logged at debug, never as an error.
        tracing::debug!(error = %self, "request rejected");
        let (status, _) = self.status_and_code();
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: a 401 names the scheme the caller must use.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
