-- Webhook subscriptions: a retailer's (or, with no retailer, every retailer's), for some
-- event names. The signing secret is kept sealed (AES-256-GCM under the server's key).
CREATE TABLE webhook_subscriptions (
    id            BIGSERIAL PRIMARY KEY,
    retailer_id   TEXT,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_on    TIMESTAMP NOT NULL
);

-- The outbox: each event commits with the change it describes; deliveries fan it out.
CREATE TABLE outbox_events (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    retailer_id TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_on  TIMESTAMP NOT NULL
);

-- One row per event and subscription: pending until a 2xx, retried with backoff, failed
-- past retry_until. A dispatcher holds a delivery under a lease while it sends it.
CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    event_id         BIGINT NOT NULL,
    subscription_id  BIGINT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    retry_until      TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    last_status      INTEGER,
    last_error       TEXT,
    created_on       TIMESTAMP NOT NULL,
    delivered_on     TIMESTAMP
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, id);

-- Emails about batches (StateSet's notification_email, a Fluent job's meta.notify).
CREATE TABLE email_notifications (
    id               BIGSERIAL PRIMARY KEY,
    batch_id         BIGINT NOT NULL,
    recipient        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    retry_until      TIMESTAMP NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMP,
    last_error       TEXT,
    created_on       TIMESTAMP NOT NULL,
    sent_on          TIMESTAMP
);
CREATE INDEX email_notifications_due ON email_notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_notifications_batch ON email_notifications (batch_id);

-- The changes of one batch, for the INVENTORY_CHANGED event.
CREATE INDEX inventory_movements_batch ON inventory_movements (batch_id);
