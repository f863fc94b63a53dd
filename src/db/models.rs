//! Rows as they are read from and written to the tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

use super::schema::{batches, inventory_positions, jobs};

/// Queue states a batch moves through, in order.
pub const PENDING: &str = "PENDING";
pub const RUNNING: &str = "RUNNING";
pub const COMPLETE: &str = "COMPLETE";

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: i64,
    pub name: String,
    pub retailer_id: String,
    pub meta: Option<String>,
    pub created_on: NaiveDateTime,
    /// Set when the job was cancelled (closed before the end of its day).
    pub closed_on: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob<'a> {
    pub name: &'a str,
    pub retailer_id: &'a str,
    pub meta: Option<&'a str>,
    pub created_on: NaiveDateTime,
}

/// The APIs a batch can come from.
pub const FLUENT: &str = "fluent";
pub const STATESET: &str = "stateset";

/// A batch without its records: what the API shows.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = batches)]
pub struct Batch {
    pub id: i64,
    /// `None` for StateSet batches, which belong to no job.
    pub job_id: Option<i64>,
    pub retailer_id: String,
    pub api: String,
    /// `UPSERT` (Fluent), or the StateSet operation.
    pub action: String,
    pub entity_type: String,
    pub options: Option<String>,
    pub dry_run: i32,
    /// The batch's own fields as sent (source, event, catalogueRef, conditions), as JSON.
    pub meta: Option<String>,
    pub status: String,
    pub record_count: i32,
    pub attempts: i32,
    pub created_on: NaiveDateTime,
    pub started_on: Option<NaiveDateTime>,
    pub completed_on: Option<NaiveDateTime>,
    /// Items with a result so far (committed steps); all of them once COMPLETE.
    pub processed_count: i32,
    /// Once COMPLETE: items applied (200) of which unchanged (Batch Pre-Processing), and
    /// rejected (any other code, skipped included).
    pub applied_count: Option<i32>,
    pub rejected_count: Option<i32>,
    pub unchanged_count: Option<i32>,
    /// A cancel was asked while it ran; `cancelled` once it ended COMPLETE because of one.
    pub cancel_requested: i32,
    pub cancelled: i32,
}

#[derive(Insertable)]
#[diesel(table_name = batches)]
pub struct NewBatch<'a> {
    pub job_id: Option<i64>,
    pub retailer_id: &'a str,
    pub api: &'a str,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub status: &'a str,
    pub record_count: i32,
    /// The records as posted (a JSON array), stored beside the batch in `batch_records`.
    #[diesel(skip_insertion)]
    pub entities: &'a str,
    pub options: Option<&'a str>,
    pub dry_run: i32,
    pub sku_min: Option<&'a str>,
    pub sku_max: Option<&'a str>,
    pub loc_min: Option<&'a str>,
    pub loc_max: Option<&'a str>,
    pub meta: Option<&'a str>,
    /// Whether Batch Pre-Processing applies (1) or not (0).
    pub preprocessing: i32,
    pub attempts: i32,
    pub created_on: NaiveDateTime,
}

/// A batch an executor has claimed (its records are read with [`find_entities`]).
///
/// [`find_entities`]: super::batches::find_entities
#[derive(QueryableByName, Debug, Clone)]
pub struct ClaimedBatch {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub job_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub retailer_id: String,
    #[diesel(sql_type = Text)]
    pub api: String,
    #[diesel(sql_type = Text)]
    pub action: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub options: Option<String>,
    #[diesel(sql_type = Integer)]
    pub dry_run: i32,
    #[diesel(sql_type = Integer)]
    pub preprocessing: i32,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Integer)]
    pub record_count: i32,
    /// When it was accepted.
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    pub created_on: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    pub seq: i32,
    pub entity_id: Option<i64>,
    pub entity_ref: Option<String>,
    pub response_code: i32,
    pub message: String,
    /// A StateSet item's result data, as JSON.
    pub data: Option<String>,
}

/// One result row to write; `seq` is the record's index in its batch.
#[derive(Debug, Clone)]
pub struct NewResult {
    pub seq: i32,
    pub entity_id: Option<i64>,
    pub entity_ref: Option<String>,
    pub response_code: i32,
    pub message: std::borrow::Cow<'static, str>,
    /// A StateSet item's result data.
    pub data: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = inventory_positions)]
pub struct Position {
    pub id: i64,
    pub retailer_id: String,
    pub location_ref: String,
    pub sku_ref: String,
    pub qty: i64,
    pub corrected_qty: Option<i64>,
    pub reserved_qty: Option<i64>,
    pub inventory_id: Option<String>,
    pub reference: Option<String>,
    pub inventory_type: String,
    pub status: Option<String>,
    pub attributes: Option<String>,
    pub extra: Option<String>,
    pub created_on: NaiveDateTime,
    pub updated_on: NaiveDateTime,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = super::schema::retailers)]
pub struct Retailer {
    pub id: String,
    pub name: String,
    pub created_on: NaiveDateTime,
    /// Days its COMPLETE batches are kept, when not the server's default.
    pub retention_days: Option<i32>,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = super::schema::users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub retailer_id: Option<String>,
    pub permissions: String,
    pub disabled: i32,
    pub created_on: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = super::schema::users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub retailer_id: Option<&'a str>,
    pub permissions: &'a str,
    pub disabled: i32,
    pub created_on: NaiveDateTime,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = super::schema::oauth_clients)]
pub struct OauthClient {
    pub id: i64,
    pub client_id: String,
    pub secret_hash: String,
    pub disabled: i32,
    pub created_on: NaiveDateTime,
    /// A client bound to a retailer gets tokens for itself (client_credentials) with these
    /// permissions; `None` for clients that only log users in.
    pub retailer_id: Option<String>,
    pub permissions: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = super::schema::tokens)]
pub struct NewToken<'a> {
    pub token_hash: &'a str,
    pub kind: &'a str,
    /// `None` for a client's own token (client_credentials).
    pub user_id: Option<i64>,
    pub client_id: i64,
    pub expires_at: NaiveDateTime,
    pub created_on: NaiveDateTime,
}

/// Who a valid access token acts for: its user, or for a client's own token the client.
#[derive(Queryable, Debug, Clone)]
pub struct TokenOwner {
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub user_retailer_id: Option<String>,
    pub user_permissions: Option<String>,
    pub client_id: String,
    pub client_retailer_id: Option<String>,
    pub client_permissions: Option<String>,
}

/// An API key as it is shown and checked: everything but its hash.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = super::schema::api_keys)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub retailer_id: String,
    pub permissions: String,
    pub default_location: String,
    pub revoked: i32,
    pub created_on: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = super::schema::api_keys)]
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub key_hash: &'a str,
    pub retailer_id: &'a str,
    pub permissions: &'a str,
    pub default_location: &'a str,
    pub revoked: i32,
    pub created_on: NaiveDateTime,
}

/// Delivery and email states.
pub const DELIVERY_PENDING: &str = "pending";
pub const DELIVERY_DELIVERED: &str = "delivered";
pub const DELIVERY_FAILED: &str = "failed";
/// An email waiting for its batch to complete.
pub const EMAIL_SCHEDULED: &str = "scheduled";
pub const EMAIL_SENT: &str = "sent";
/// An email that could not be sent at all (no SMTP relay configured).
pub const EMAIL_NOT_SENT: &str = "not_sent";

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = super::schema::webhook_subscriptions)]
pub struct WebhookSubscription {
    pub id: i64,
    /// `None`: every retailer's events (an administrator's subscription).
    pub retailer_id: Option<String>,
    pub url: String,
    /// Event names, comma-separated.
    pub events: String,
    pub secret_sealed: String,
    pub created_on: NaiveDateTime,
}

/// A delivery as its subscription's list shows it.
#[derive(Queryable, Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub event_name: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub retry_until: NaiveDateTime,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_on: NaiveDateTime,
    pub delivered_on: Option<NaiveDateTime>,
}

/// A delivery a dispatcher holds under its lease, with what it needs to send it.
#[derive(Queryable, Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub subscription_id: i64,
    pub attempts: i32,
    pub retry_until: NaiveDateTime,
    pub url: String,
    pub secret_sealed: String,
    pub event_id: String,
    pub event_name: String,
    pub payload: String,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = super::schema::email_notifications)]
pub struct EmailNotification {
    pub id: i64,
    pub batch_id: i64,
    pub recipient: String,
    pub status: String,
    pub attempts: i32,
    pub retry_until: NaiveDateTime,
    pub last_error: Option<String>,
    pub sent_on: Option<NaiveDateTime>,
}
