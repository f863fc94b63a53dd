//! `/api/v4.1/webhooks`: subscriptions to events, and their deliveries; and the email
//! status batch views show. A retailer's users
//! see and manage that retailer's subscriptions; administrators, every one (and may
//! subscribe to every retailer's events). Creating, deleting and replaying take
//! JOB_CREATE; reading, JOB_VIEW.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, Utc};
use serde::Serialize;

use crate::api::body::Body;
use crate::api::error::ApiError;
use crate::api::principal::require;
use crate::api::support::{
    blocking, parse_id, require_json, rfc3339, with_conn, AppState, Listing, PageQuery,
};
use crate::auth::{Permission, Principal};
use crate::db::models::{Delivery, WebhookSubscription, DELIVERY_FAILED, EMAIL_NOT_SENT};
use crate::db::{notifications, write_transaction, DbConnection};
use crate::domain::paging::Page;
use crate::domain::webhook::parse_subscription;
use crate::notify::{check_destination, new_webhook_secret};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionView {
    id: String,
    url: String,
    events: Vec<String>,
    /// `null`: every retailer's events.
    retailer_id: Option<String>,
    created_on: String,
    /// Only in the answer to the create, once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl SubscriptionView {
    fn of(s: WebhookSubscription, secret: Option<String>) -> Self {
        SubscriptionView {
            id: s.id.to_string(),
            url: s.url,
            events: s.events.split(',').map(str::to_owned).collect(),
            retailer_id: s.retailer_id,
            created_on: rfc3339(s.created_on),
            secret,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryView {
    id: String,
    event_id: String,
    event: String,
    /// `pending` (to be sent, or retried at `nextAttemptOn`), `delivered` or `failed`.
    status: String,
    attempts: i32,
    next_attempt_on: Option<String>,
    retry_until: String,
    /// The receiver's HTTP status at the last attempt, when it answered.
    last_status: Option<i32>,
    last_error: Option<String>,
    created_on: String,
    delivered_on: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let pending = d.status == crate::db::models::DELIVERY_PENDING;
        DeliveryView {
            id: d.id.to_string(),
            event_id: d.event_id,
            event: d.event_name,
            status: d.status,
            attempts: d.attempts,
            next_attempt_on: pending.then(|| rfc3339(d.next_attempt_at)),
            retry_until: rfc3339(d.retry_until),
            last_status: d.last_status,
            last_error: d.last_error,
            created_on: rfc3339(d.created_on),
            delivered_on: d.delivered_on.map(rfc3339),
        }
    }
}

/// `POST /api/v4.1/webhooks`: 201 with the subscription and its secret, shown only here;
/// 400 for a malformed request, 422 for a URL that cannot be used.
pub async fn create(
    principal: Principal,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobCreate)?;
    require_json(&req)?;
    let draft = parse_subscription(&body).map_err(ApiError::BadRequest)?;
    let retailer = match (&principal.retailer_id, draft.retailer_id) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::Forbidden(format!(
                "this user may not subscribe to retailer {asked}'s events"
            )))
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let allow_private = state.allow_private_destinations;
    let url = draft.url.clone();
    // Resolving the host blocks: off the async workers.
    let url = blocking(move || {
        check_destination(&url, allow_private)
            .map(|u| u.to_string())
            .map_err(|e| ApiError::Unprocessable(e.0))
    })
    .await?;
    let secret = draft.secret.unwrap_or_else(new_webhook_secret);
    let sealed = state.sealer.seal(&secret).map_err(ApiError::Internal)?;
    let events = draft.events.join(",");
    let gate = state.gate.clone();
    let subscription = with_conn(&state.pool, move |conn| {
        gate.api(|| {
            write_transaction(conn, |conn| {
                let now = Utc::now().naive_utc();
                let id = notifications::insert_subscription(
                    conn,
                    retailer.as_deref(),
                    &url,
                    &events,
                    &sealed,
                    now,
                )?;
                find(conn, &principal, id)
            })
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(SubscriptionView::of(subscription, Some(secret))))
}

/// `GET /api/v4.1/webhooks`: the subscriptions the caller sees.
pub async fn list(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobView)?;
    let rows = with_conn(&state.pool, move |conn| {
        Ok(notifications::list_subscriptions(
            conn,
            principal.retailer_id.as_deref(),
        )?)
    })
    .await?;
    let total = rows.len() as i64;
    Ok(HttpResponse::Ok().json(Listing {
        start: 1,
        count: total,
        total,
        results: rows
            .into_iter()
            .map(|s| SubscriptionView::of(s, None))
            .collect(),
    }))
}

/// `GET /api/v4.1/webhooks/{id}`.
pub async fn get(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobView)?;
    let id = parse_id("webhook", &path)?;
    let subscription = with_conn(&state.pool, move |conn| find(conn, &principal, id)).await?;
    Ok(HttpResponse::Ok().json(SubscriptionView::of(subscription, None)))
}

/// `DELETE /api/v4.1/webhooks/{id}`: 204; its deliveries, sent or not, go with it.
pub async fn delete(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobCreate)?;
    let id = parse_id("webhook", &path)?;
    let gate = state.gate.clone();
    with_conn(&state.pool, move |conn| {
        gate.api(|| {
            write_transaction(conn, |conn| {
                find(conn, &principal, id)?;
                notifications::delete_subscription(conn, id)?;
                Ok::<_, ApiError>(())
            })
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v4.1/webhooks/{id}/deliveries`: newest first, paged with `start`/`count`.
pub async fn deliveries(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobView)?;
    let id = parse_id("webhook", &path)?;
    let page = Page::from_query(query.start, query.count).map_err(ApiError::BadRequest)?;
    let (rows, total) = with_conn(&state.pool, move |conn| {
        find(conn, &principal, id)?;
        Ok(notifications::list_deliveries(
            conn,
            id,
            page.offset(),
            page.count,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Listing {
        start: page.start,
        count: rows.len() as i64,
        total,
        results: rows.into_iter().map(DeliveryView::from).collect::<Vec<_>>(),
    }))
}

/// `POST /api/v4.1/webhooks/{id}/deliveries/{deliveryId}/replay`: 202, the delivery sent
/// again now (with a fresh retry window); 409 while an attempt at it is in flight.
pub async fn replay(
    principal: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    require(&principal, Permission::JobCreate)?;
    let id = parse_id("webhook", &path.0)?;
    let delivery_id = parse_id("delivery", &path.1)?;
    let (gate, outbox) = (state.gate.clone(), state.outbox.clone());
    let delivery = with_conn(&state.pool, move |conn| {
        gate.api(|| {
            write_transaction(conn, |conn| {
                find(conn, &principal, id)?;
                let now: NaiveDateTime = Utc::now().naive_utc();
                let missing =
                    || ApiError::NotFound(format!("delivery {delivery_id} not found in webhook {id}"));
                notifications::find_delivery(conn, id, delivery_id)?.ok_or_else(missing)?;
                if !notifications::replay_delivery(conn, id, delivery_id, now, outbox.retry_until(now))? {
                    return Err(ApiError::Conflict(format!(
                        "delivery {delivery_id} is being sent right now; replay it once that attempt ends"
                    )));
                }
                notifications::find_delivery(conn, id, delivery_id)?.ok_or_else(missing)
            })
        })
    })
    .await?;
    state.outbox.wake();
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(DeliveryView::from(delivery)))
}

/// The subscription `id` if the caller sees it; any other answers as missing.
fn find(
    conn: &mut DbConnection,
    principal: &Principal,
    id: i64,
) -> Result<WebhookSubscription, ApiError> {
    notifications::find_subscription(conn, id)?
        .filter(|s| match &s.retailer_id {
            Some(of) => principal.sees(of),
            None => principal.retailer_id.is_none(),
        })
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id} not found")))
}

/// The email asked for about a batch, as the batch's view shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailView {
    pub email: String,
    /// `scheduled` (until the batch completes), `pending`, `sent`, `failed: <why>` or
    /// `not_sent: <why>`.
    pub status: String,
    pub attempts: i32,
    /// Why the last attempt failed, while it is retried.
    pub last_error: Option<String>,
    pub sent_on: Option<String>,
}

impl EmailView {
    pub fn load(conn: &mut DbConnection, batch_id: i64) -> Result<Option<EmailView>, ApiError> {
        Ok(notifications::email_of_batch(conn, batch_id)?.map(|e| {
            let ended = e.status == EMAIL_NOT_SENT || e.status == DELIVERY_FAILED;
            EmailView {
                email: e.recipient,
                status: match (&e.last_error, ended) {
                    (Some(why), true) => format!("{}: {why}", e.status),
                    _ => e.status,
                },
                attempts: e.attempts,
                last_error: if ended { None } else { e.last_error },
                sent_on: e.sent_on.map(rfc3339),
            }
        }))
    }
}
