//! The one error type of the HTTP edge, and the `{"errors":[{code,message}]}` body every
//! error response carries — including the ones actix-web produces itself.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

#[derive(Serialize, Debug)]
pub struct ErrorBody {
    pub errors: Vec<ErrorEntry>,
}

#[derive(Serialize, Debug)]
pub struct ErrorEntry {
    pub code: String,
    pub message: String,
}

/// An error response with one entry per message, `code` being the HTTP status.
pub fn error_response(
    status: StatusCode,
    messages: impl IntoIterator<Item = String>,
) -> HttpResponse {
    let errors = messages
        .into_iter()
        .map(|message| ErrorEntry {
            code: status.as_u16().to_string(),
            message,
        })
        .collect();
    HttpResponse::build(status).json(ErrorBody { errors })
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {}", .0.join("; "))]
    BadRequest(Vec<String>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    RequestTimeout(String),
    /// The service is at a limit it sets itself (bodies in flight, logins being checked).
    #[error("{0}")]
    Busy(String),
    /// The queue is full: the client should slow down.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![message.into()])
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ApiError::BadRequest(messages) => error_response(status, messages.clone()),
            ApiError::Unauthorized(m) => {
                let mut response = error_response(status, [m.clone()]);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::Unprocessable(m) => error_response(status, [m.clone()]),
            ApiError::RequestTimeout(m) => {
                let mut response = error_response(status, [m.clone()]);
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
            ApiError::Busy(m) => retry_after(error_response(status, [m.clone()])),
            ApiError::TooManyRequests(m) => {
                let mut response = error_response(status, [m.clone()]);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            ApiError::Unavailable(cause) => {
                log::warn!("503: database unavailable: {cause}");
                retry_after(error_response(
                    status,
                    ["the database is unavailable; retry shortly".to_owned()],
                ))
            }
            ApiError::Internal(e) => {
                log::error!("500: {e:#}");
                error_response(status, ["internal server error".to_owned()])
            }
        }
    }
}

/// Adds `Retry-After: 1`: the condition is expected to pass within a second or so.
pub fn retry_after(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

impl From<DieselError> for ApiError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::NotFound => ApiError::NotFound("not found".to_owned()),
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )
            | DieselError::BrokenTransactionManager => ApiError::Unavailable(e.to_string()),
            DieselError::DatabaseError(_, info) if is_transient(info.message()) => {
                ApiError::Unavailable(e.to_string())
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

/// Messages of errors that go away by themselves: a busy SQLite file, a lost server.
fn is_transient(message: &str) -> bool {
    const TRANSIENT: [&str; 7] = [
        "database is locked",
        "database is busy",
        "server closed the connection",
        "terminating connection",
        "could not connect",
        "connection refused",
        "no connection to the server",
    ];
    let message = message.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| message.contains(t))
}

/// Rewrites error responses that are not JSON (actix-web's own: unknown route, payload
/// too large, ...) into the errors body, keeping their status.
pub fn json_error_body<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = describe_status(
        status,
        res.request(),
        res.response().error().map(|e| e.to_string()),
    );
    let (req, _) = res.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, error_response(status, [message])).map_into_right_body(),
    ))
}

fn describe_status(status: StatusCode, req: &HttpRequest, cause: Option<String>) -> String {
    match status {
        StatusCode::NOT_FOUND => format!("no route for {} {}", req.method(), req.path()),
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("{} is not allowed on {}", req.method(), req.path())
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this service accepts".to_owned()
        }
        _ => cause
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
    }
}
