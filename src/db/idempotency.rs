//! Idempotency-Key: the answer first given to a request, kept per principal scope and key
//! for a while, so a retry is answered the same without doing anything again.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::idempotency_keys as keys;
use super::sql::delete_before;
use super::DbConnection;

/// What was answered to the first request that carried a key.
#[derive(Queryable, Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub fingerprint: String,
    pub status: i32,
    /// The answer's body, when it was fixed at once.
    pub response: Option<String>,
    /// The batch whose state is the answer (StateSet batches).
    pub batch_id: Option<i64>,
}

/// The answer stored for `key` in `scope` since `since`.
pub fn find_answer(
    conn: &mut DbConnection,
    scope: &str,
    key: &str,
    since: NaiveDateTime,
) -> QueryResult<Option<StoredAnswer>> {
    keys::table
        .find((scope, key))
        .filter(keys::created_on.ge(since))
        .select((
            keys::fingerprint,
            keys::status,
            keys::response,
            keys::batch_id,
        ))
        .first(conn)
        .optional()
}

/// Stores the answer to the first request with `key`, replacing one that expired before
/// `since`. Fails with a unique violation when another request stored one first.
pub fn save_answer(
    conn: &mut DbConnection,
    scope: &str,
    key: &str,
    answer: &StoredAnswer,
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::delete(
        keys::table
            .find((scope, key))
            .filter(keys::created_on.lt(since)),
    )
    .execute(conn)?;
    diesel::insert_into(keys::table)
        .values((
            keys::scope.eq(scope),
            keys::key.eq(key),
            keys::fingerprint.eq(&answer.fingerprint),
            keys::status.eq(answer.status),
            keys::response.eq(&answer.response),
            keys::batch_id.eq(answer.batch_id),
            keys::created_on.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Deletes up to `limit` keys stored before `cutoff`.
pub fn delete_answers_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    delete_before(
        conn,
        "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM \
         idempotency_keys WHERE created_on < $1 ORDER BY created_on LIMIT $2)",
        cutoff,
        limit,
    )
}
