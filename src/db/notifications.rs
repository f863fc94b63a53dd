//! Notifications: webhook subscriptions, the outbox of events with one delivery per
//! subscriber, and batch emails. Deliveries and emails are claimed under a lease, like
//! batches, so dispatchers on several nodes never send one twice while its lease holds.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::models::{
    ClaimedDelivery, Delivery, EmailNotification, WebhookSubscription, DELIVERY_DELIVERED,
    DELIVERY_FAILED, DELIVERY_PENDING, EMAIL_NOT_SENT, EMAIL_SCHEDULED, EMAIL_SENT,
};
use super::schema::{email_notifications as emails, outbox_events as events};
use super::schema::{webhook_deliveries as deliveries, webhook_subscriptions as subscriptions};
use super::sql::numbered_for_sqlite;
use super::DbConnection;
use crate::domain::webhook::wants;

pub fn insert_subscription(
    conn: &mut DbConnection,
    retailer_id: Option<&str>,
    url: &str,
    events: &str,
    secret_sealed: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(subscriptions::table)
        .values((
            subscriptions::retailer_id.eq(retailer_id),
            subscriptions::url.eq(url),
            subscriptions::events.eq(events),
            subscriptions::secret_sealed.eq(secret_sealed),
            subscriptions::created_on.eq(now),
        ))
        .returning(subscriptions::id)
        .get_result(conn)
}

/// `retailer`'s subscriptions, or with `None` every one.
pub fn list_subscriptions(
    conn: &mut DbConnection,
    retailer: Option<&str>,
) -> QueryResult<Vec<WebhookSubscription>> {
    let mut query = subscriptions::table
        .order(subscriptions::id)
        .select(WebhookSubscription::as_select())
        .into_boxed();
    if let Some(retailer) = retailer {
        query = query.filter(subscriptions::retailer_id.eq(retailer));
    }
    query.load(conn)
}

pub fn find_subscription(
    conn: &mut DbConnection,
    id: i64,
) -> QueryResult<Option<WebhookSubscription>> {
    subscriptions::table
        .find(id)
        .select(WebhookSubscription::as_select())
        .first(conn)
        .optional()
}

/// Deletes a subscription and its deliveries (sent or not). Call inside a transaction.
pub fn delete_subscription(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    diesel::delete(deliveries::table.filter(deliveries::subscription_id.eq(id))).execute(conn)?;
    Ok(diesel::delete(subscriptions::table.find(id)).execute(conn)? == 1)
}

/// The subscriptions that want `event` of `retailer`: its own and every-retailer ones.
pub fn subscribers(conn: &mut DbConnection, retailer: &str, event: &str) -> QueryResult<Vec<i64>> {
    let rows: Vec<(i64, String)> = subscriptions::table
        .filter(
            subscriptions::retailer_id
                .eq(retailer)
                .or(subscriptions::retailer_id.is_null()),
        )
        .select((subscriptions::id, subscriptions::events))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(_, names)| wants(names, event))
        .map(|(id, _)| id)
        .collect())
}

/// An event for the outbox, and who gets it.
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub name: &'a str,
    pub retailer_id: &'a str,
    pub payload: &'a str,
    pub subscribers: &'a [i64],
}

/// Stores `event` with one pending delivery per subscriber, each tried until
/// `retry_until`. Call inside the transaction of the change the event describes.
pub fn insert_event(
    conn: &mut DbConnection,
    event: &NewEvent,
    now: NaiveDateTime,
    retry_until: NaiveDateTime,
) -> QueryResult<i64> {
    let id = diesel::insert_into(events::table)
        .values((
            events::event_id.eq(event.event_id),
            events::name.eq(event.name),
            events::retailer_id.eq(event.retailer_id),
            events::payload.eq(event.payload),
            events::created_on.eq(now),
        ))
        .returning(events::id)
        .get_result::<i64>(conn)?;
    // One statement per subscriber: a retailer has a handful.
    for subscription in event.subscribers {
        diesel::insert_into(deliveries::table)
            .values((
                deliveries::event_id.eq(id),
                deliveries::subscription_id.eq(*subscription),
                deliveries::status.eq(DELIVERY_PENDING),
                deliveries::attempts.eq(0),
                deliveries::next_attempt_at.eq(now),
                deliveries::retry_until.eq(retry_until),
                deliveries::created_on.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(id)
}

/// Whether any delivery is due and free: a read, so idle dispatchers never take SQLite's
/// write lock.
pub fn delivery_due(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        deliveries::table
            .filter(deliveries::status.eq(DELIVERY_PENDING))
            .filter(deliveries::next_attempt_at.le(now))
            .filter(
                deliveries::lease_expires_at
                    .is_null()
                    .or(deliveries::lease_expires_at.lt(now)),
            ),
    ))
    .get_result(conn)
}

/// The oldest due delivery whose subscription has none in flight, leased to `owner` until
/// `lease_until` (its attempt counted). A lease that ran out (its dispatcher died) is
/// taken over: delivery is at least once across crashes, once while leases hold.
const CLAIM_DELIVERY: &str = "UPDATE webhook_deliveries \
    SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
    WHERE id = (SELECT d.id FROM webhook_deliveries d \
        WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
        AND (d.lease_expires_at IS NULL OR d.lease_expires_at < $3) \
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o \
            WHERE o.subscription_id = d.subscription_id AND o.status = 'pending' \
            AND o.lease_expires_at >= $3) \
        ORDER BY d.id LIMIT 1 LOCKED) \
    RETURNING id";

/// Like [`CLAIM_DELIVERY`], for emails.
const CLAIM_EMAIL: &str = "UPDATE email_notifications \
    SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
    WHERE id = (SELECT e.id FROM email_notifications e \
        WHERE e.status = 'pending' AND e.next_attempt_at <= $3 \
        AND (e.lease_expires_at IS NULL OR e.lease_expires_at < $3) \
        ORDER BY e.id LIMIT 1 LOCKED) \
    RETURNING id";

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn claim(
    conn: &mut DbConnection,
    sql: &str,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<i64>> {
    let query = |sql: String| {
        sql_query(sql)
            .bind::<Text, _>(owner.to_owned())
            .bind::<Timestamp, _>(lease_until)
            .bind::<Timestamp, _>(now)
    };
    let claimed: Option<Claimed> = match conn {
        DbConnection::Sqlite(c) => query(numbered_for_sqlite(&sql.replace(" LOCKED", "")))
            .get_result(c)
            .optional()?,
        DbConnection::Pg(c) => query(sql.replace(" LOCKED", " FOR UPDATE SKIP LOCKED"))
            .get_result(c)
            .optional()?,
    };
    Ok(claimed.map(|c| c.id))
}

pub fn claim_delivery(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<ClaimedDelivery>> {
    let Some(id) = claim(conn, CLAIM_DELIVERY, owner, now, lease_until)? else {
        return Ok(None);
    };
    deliveries::table
        .inner_join(subscriptions::table)
        .inner_join(events::table)
        .filter(deliveries::id.eq(id))
        .select((
            deliveries::id,
            deliveries::subscription_id,
            deliveries::attempts,
            deliveries::retry_until,
            subscriptions::url,
            subscriptions::secret_sealed,
            events::event_id,
            events::name,
            events::payload,
        ))
        .first(conn)
        .optional()
}

/// How one attempt at a delivery or an email ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Done {
        status: Option<i32>,
    },
    Retry {
        at: NaiveDateTime,
        status: Option<i32>,
        error: String,
    },
    Failed {
        status: Option<i32>,
        error: String,
    },
}

/// Records an attempt at a delivery `owner` holds; `false` if its lease was lost.
pub fn record_delivery(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    attempt: &Attempt,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let held = deliveries::table
        .filter(deliveries::id.eq(id))
        .filter(deliveries::status.eq(DELIVERY_PENDING))
        .filter(deliveries::lease_owner.eq(owner));
    let released = (
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
    );
    let updated = match attempt {
        Attempt::Done { status } => diesel::update(held)
            .set((
                released,
                deliveries::status.eq(DELIVERY_DELIVERED),
                deliveries::delivered_on.eq(Some(now)),
                deliveries::last_status.eq(status),
                deliveries::last_error.eq(None::<String>),
            ))
            .execute(conn)?,
        Attempt::Retry { at, status, error } => diesel::update(held)
            .set((
                released,
                deliveries::next_attempt_at.eq(at),
                deliveries::last_status.eq(status),
                deliveries::last_error.eq(error),
            ))
            .execute(conn)?,
        Attempt::Failed { status, error } => diesel::update(held)
            .set((
                released,
                deliveries::status.eq(DELIVERY_FAILED),
                deliveries::last_status.eq(status),
                deliveries::last_error.eq(error),
            ))
            .execute(conn)?,
    };
    Ok(updated == 1)
}

/// Makes a subscription's waiting deliveries due now: its receiver answers again.
pub fn hurry_subscription(
    conn: &mut DbConnection,
    subscription_id: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        deliveries::table
            .filter(deliveries::subscription_id.eq(subscription_id))
            .filter(deliveries::status.eq(DELIVERY_PENDING))
            .filter(deliveries::next_attempt_at.gt(now)),
    )
    .set(deliveries::next_attempt_at.eq(now))
    .execute(conn)
}

/// A page of a subscription's deliveries, newest first, and how many it has.
pub fn list_deliveries(
    conn: &mut DbConnection,
    subscription_id: i64,
    offset: i64,
    count: i64,
) -> QueryResult<(Vec<Delivery>, i64)> {
    let total = deliveries::table
        .filter(deliveries::subscription_id.eq(subscription_id))
        .count()
        .get_result(conn)?;
    let rows = deliveries::table
        .inner_join(events::table)
        .filter(deliveries::subscription_id.eq(subscription_id))
        .order(deliveries::id.desc())
        .offset(offset)
        .limit(count)
        .select((
            deliveries::id,
            events::event_id,
            events::name,
            deliveries::status,
            deliveries::attempts,
            deliveries::next_attempt_at,
            deliveries::retry_until,
            deliveries::last_status,
            deliveries::last_error,
            deliveries::created_on,
            deliveries::delivered_on,
        ))
        .load(conn)?;
    Ok((rows, total))
}

pub fn find_delivery(
    conn: &mut DbConnection,
    subscription_id: i64,
    id: i64,
) -> QueryResult<Option<Delivery>> {
    deliveries::table
        .inner_join(events::table)
        .filter(deliveries::subscription_id.eq(subscription_id))
        .filter(deliveries::id.eq(id))
        .select((
            deliveries::id,
            events::event_id,
            events::name,
            deliveries::status,
            deliveries::attempts,
            deliveries::next_attempt_at,
            deliveries::retry_until,
            deliveries::last_status,
            deliveries::last_error,
            deliveries::created_on,
            deliveries::delivered_on,
        ))
        .first(conn)
        .optional()
}

/// Sends a delivery again — delivered, failed or waiting — now, with a fresh retry window.
/// One in flight is left alone. Returns whether it was queued.
pub fn replay_delivery(
    conn: &mut DbConnection,
    subscription_id: i64,
    id: i64,
    now: NaiveDateTime,
    retry_until: NaiveDateTime,
) -> QueryResult<bool> {
    let updated = diesel::update(
        deliveries::table
            .filter(deliveries::subscription_id.eq(subscription_id))
            .filter(deliveries::id.eq(id))
            .filter(
                deliveries::lease_expires_at
                    .is_null()
                    .or(deliveries::lease_expires_at.lt(now)),
            ),
    )
    .set((
        deliveries::status.eq(DELIVERY_PENDING),
        deliveries::next_attempt_at.eq(now),
        deliveries::retry_until.eq(retry_until),
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Deliveries waiting to be sent or retried, and when the oldest was written.
pub fn pending_deliveries(conn: &mut DbConnection) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    deliveries::table
        .filter(deliveries::status.eq(DELIVERY_PENDING))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(deliveries::created_on),
        ))
        .first(conn)
}

/// Frees every lease on deliveries and emails: a SQLite executor, the only one, starting
/// after a crash.
pub fn release_leases(conn: &mut DbConnection) -> QueryResult<usize> {
    let released = diesel::update(deliveries::table.filter(deliveries::lease_owner.is_not_null()))
        .set((
            deliveries::lease_owner.eq(None::<String>),
            deliveries::lease_expires_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(released
        + diesel::update(emails::table.filter(emails::lease_owner.is_not_null()))
            .set((
                emails::lease_owner.eq(None::<String>),
                emails::lease_expires_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?)
}

/// Deletes up to `chunk` finished deliveries created before `cutoff`, then the events
/// left without deliveries and emails whose batch is gone.
pub fn delete_finished_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    chunk: i64,
) -> QueryResult<usize> {
    let ids: Vec<i64> = deliveries::table
        .filter(deliveries::status.ne(DELIVERY_PENDING))
        .filter(deliveries::created_on.lt(cutoff))
        .select(deliveries::id)
        .limit(chunk)
        .load(conn)?;
    let mut deleted =
        diesel::delete(deliveries::table.filter(deliveries::id.eq_any(&ids))).execute(conn)?;
    deleted += diesel::delete(events::table.filter(events::created_on.lt(cutoff)).filter(
        diesel::dsl::not(diesel::dsl::exists(
            deliveries::table.filter(deliveries::event_id.eq(events::id)),
        )),
    ))
    .execute(conn)?;
    deleted += diesel::delete(
        emails::table
            .filter(emails::created_on.lt(cutoff))
            .filter(emails::status.ne(DELIVERY_PENDING))
            .filter(emails::status.ne(EMAIL_SCHEDULED)),
    )
    .execute(conn)?;
    Ok(deleted)
}

/// Asks for an email about `batch_id` once it completes.
pub fn schedule_email(
    conn: &mut DbConnection,
    batch_id: i64,
    recipient: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(emails::table)
        .values((
            emails::batch_id.eq(batch_id),
            emails::recipient.eq(recipient),
            emails::status.eq(EMAIL_SCHEDULED),
            emails::attempts.eq(0),
            emails::next_attempt_at.eq(now),
            emails::retry_until.eq(now),
            emails::created_on.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The batch completed: its email is due now, or — with no SMTP relay configured — marked
/// not sent, saying why. Call inside the completing transaction.
pub fn release_batch_email(
    conn: &mut DbConnection,
    batch_id: i64,
    now: NaiveDateTime,
    retry_until: NaiveDateTime,
    relay_configured: bool,
) -> QueryResult<()> {
    let scheduled = emails::table
        .filter(emails::batch_id.eq(batch_id))
        .filter(emails::status.eq(EMAIL_SCHEDULED));
    if relay_configured {
        diesel::update(scheduled)
            .set((
                emails::status.eq(DELIVERY_PENDING),
                emails::next_attempt_at.eq(now),
                emails::retry_until.eq(retry_until),
            ))
            .execute(conn)?;
    } else {
        diesel::update(scheduled)
            .set((
                emails::status.eq(EMAIL_NOT_SENT),
                emails::last_error.eq(Some(NO_RELAY)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Why an email was not sent when no relay is configured.
pub const NO_RELAY: &str = "no SMTP relay configured";

pub fn email_due(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        emails::table
            .filter(emails::status.eq(DELIVERY_PENDING))
            .filter(emails::next_attempt_at.le(now))
            .filter(
                emails::lease_expires_at
                    .is_null()
                    .or(emails::lease_expires_at.lt(now)),
            ),
    ))
    .get_result(conn)
}

pub fn claim_email(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Option<EmailNotification>> {
    let Some(id) = claim(conn, CLAIM_EMAIL, owner, now, lease_until)? else {
        return Ok(None);
    };
    emails::table
        .find(id)
        .select(EmailNotification::as_select())
        .first(conn)
        .optional()
}

/// Records an attempt at an email `owner` holds; `false` if its lease was lost.
pub fn record_email(
    conn: &mut DbConnection,
    id: i64,
    owner: &str,
    attempt: &Attempt,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let held = emails::table
        .filter(emails::id.eq(id))
        .filter(emails::status.eq(DELIVERY_PENDING))
        .filter(emails::lease_owner.eq(owner));
    let released = (
        emails::lease_owner.eq(None::<String>),
        emails::lease_expires_at.eq(None::<NaiveDateTime>),
    );
    let updated = match attempt {
        Attempt::Done { .. } => diesel::update(held)
            .set((
                released,
                emails::status.eq(EMAIL_SENT),
                emails::sent_on.eq(Some(now)),
                emails::last_error.eq(None::<String>),
            ))
            .execute(conn)?,
        Attempt::Retry { at, error, .. } => diesel::update(held)
            .set((
                released,
                emails::next_attempt_at.eq(at),
                emails::last_error.eq(error),
            ))
            .execute(conn)?,
        Attempt::Failed { error, .. } => diesel::update(held)
            .set((
                released,
                emails::status.eq(DELIVERY_FAILED),
                emails::last_error.eq(error),
            ))
            .execute(conn)?,
    };
    Ok(updated == 1)
}

/// The email asked for about a batch, if any.
pub fn email_of_batch(
    conn: &mut DbConnection,
    batch_id: i64,
) -> QueryResult<Option<EmailNotification>> {
    emails::table
        .filter(emails::batch_id.eq(batch_id))
        .order(emails::id)
        .select(EmailNotification::as_select())
        .first(conn)
        .optional()
}
