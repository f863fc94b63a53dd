DROP INDEX inventory_movements_batch;
DROP TABLE email_notifications;
DROP TABLE webhook_deliveries;
DROP TABLE outbox_events;
DROP TABLE webhook_subscriptions;
