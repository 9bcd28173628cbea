//! Envoy ext_authz over gRPC (`envoy.service.auth.v3.Authorization/Check`)
//! on its own listener (`--grpc-listen`), with tonic and the generated
//! types of `envoy-types`. A thin adapter: method, path and headers from
//! `attributes.request.http` go through the same decision path as the HTTP
//! doors; an allow is an `OkHttpResponse` with the identity headers, a
//! denial a `DeniedHttpResponse` with the status and the JSON body. Any
//! request without HTTP attributes is denied.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HttpStatus, OkHttpResponse,
};
use envoy_types::ext_authz::v3::{CheckResponseExt, OkHttpResponseBuilder};

use super::doors::{
    gateway_decide, DoorAnswer, DECISION_ID_HEADER, PRINCIPAL_HEADER, ROUTE_HEADER,
};
use super::middleware::RequestMeta;
use super::AppState;
use crate::gateway::{Door, Gateway, GatewayRequest, Outcome};

/// The ext_authz gRPC service.
pub struct GrpcDoor {
    state: AppState,
    gateway: Arc<Gateway>,
}

impl GrpcDoor {
    /// A door deciding with `state` through `gateway`.
    pub fn new(state: AppState, gateway: Arc<Gateway>) -> Self {
        Self { state, gateway }
    }

    /// Serves the door on `listener` until `stop` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(AuthorizationServer::new(self))
            .serve_with_incoming_shutdown(incoming, stop)
            .await
    }

    fn answer(
        &self,
        request: &CheckRequest,
        request_id: String,
        client: Option<String>,
    ) -> DoorAnswer {
        let http = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let Some(http) = http else {
            return self.bad("the check request carries no HTTP attributes");
        };
        let Ok(method) = Method::from_bytes(http.method.as_bytes()) else {
            return self.bad("the check request's method is invalid");
        };
        let mut headers = HeaderMap::new();
        let raw = http.header_map.iter().flat_map(|m| &m.headers).map(|h| {
            let value = if h.raw_value.is_empty() {
                h.value.as_bytes()
            } else {
                h.raw_value.as_slice()
            };
            (h.key.as_str(), value)
        });
        let pairs = http
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .chain(raw);
        for (name, value) in pairs {
            // Pseudo-headers (`:path`...) and malformed ones are not the
            // request's headers.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        let path = if http.path.is_empty() {
            "/"
        } else {
            http.path.as_str()
        };
        let meta = RequestMeta { request_id, client };
        let gateway_request = GatewayRequest {
            method: &method,
            path_and_query: path,
            headers: &headers,
        };
        gateway_decide(
            &self.state,
            &self.gateway,
            Door::ExtAuthzGrpc,
            &meta,
            &gateway_request,
        )
    }

    fn bad(&self, message: &str) -> DoorAnswer {
        self.gateway
            .metrics
            .record(Door::ExtAuthzGrpc, Outcome::BadRequest);
        DoorAnswer {
            outcome: Outcome::BadRequest,
            status: StatusCode::FORBIDDEN,
            code: "invalid_check_request",
            message: message.to_string(),
            principal: None,
            decision_id: None,
            route: None,
        }
    }
}

#[tonic::async_trait]
impl Authorization for GrpcDoor {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let client = request.remote_addr().map(|a| a.to_string());
        let request_id = uuid::Uuid::now_v7().to_string();
        let answer = self.answer(request.get_ref(), request_id, client);
        Ok(tonic::Response::new(check_response(&answer)))
    }
}

/// The answer as Envoy's `CheckResponse`.
pub fn check_response(answer: &DoorAnswer) -> CheckResponse {
    let overwrite = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
    if answer.status.is_success() {
        let mut ok = OkHttpResponseBuilder::new();
        // Overwritten, never appended: a client's own `x-cedar-principal`
        // must not reach the upstream.
        if let Some(principal) = &answer.principal {
            ok.add_header(
                PRINCIPAL_HEADER.as_str(),
                principal.as_str(),
                overwrite,
                false,
            );
        } else {
            ok.remove_header(PRINCIPAL_HEADER.as_str());
        }
        match &answer.decision_id {
            Some(id) => {
                ok.add_header(DECISION_ID_HEADER.as_str(), id.as_str(), overwrite, false);
            }
            // A public route: no decision, and no client-sent id either.
            None => {
                ok.remove_header(DECISION_ID_HEADER.as_str());
            }
        }
        if let Some(route) = &answer.route {
            ok.add_header(ROUTE_HEADER.as_str(), route.as_ref(), overwrite, false);
        }
        let mut response = CheckResponse::with_status(tonic::Status::ok("allowed"));
        response.set_http_response(OkHttpResponse::from(ok));
        return response;
    }
    let code = if answer.status == StatusCode::UNAUTHORIZED {
        tonic::Code::Unauthenticated
    } else {
        tonic::Code::PermissionDenied
    };
    #[allow(deprecated)]
    let header = |key: &str, value: String| envoy_types::ext_authz::v3::pb::HeaderValueOption {
        header: Some(envoy_types::ext_authz::v3::pb::HeaderValue {
            key: key.to_string(),
            value,
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        keep_empty_value: false,
    };
    let mut headers = vec![header("content-type", "application/json".to_string())];
    if answer.status == StatusCode::UNAUTHORIZED {
        headers.push(header("www-authenticate", answer.challenge()));
    }
    if let Some(id) = &answer.decision_id {
        headers.push(header(DECISION_ID_HEADER.as_str(), id.clone()));
    }
    let denied = DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(answer.status.as_u16()),
        }),
        headers,
        body: answer.body().to_string(),
    };
    let mut response = CheckResponse::with_status(tonic::Status::new(code, answer.code));
    response.set_http_response(denied);
    response
}
