// @generated shape: kept in step with migrations/{sqlite,postgres} (see diesel.toml).

diesel::table! {
    jobs (id) {
        id -> BigInt,
        name -> Text,
        retailer_id -> Text,
        meta -> Nullable<Text>,
        created_on -> Timestamp,
        closed_on -> Nullable<Timestamp>,
    }
}

diesel::table! {
    batches (id) {
        id -> BigInt,
        job_id -> Nullable<BigInt>,
        retailer_id -> Text,
        api -> Text,
        action -> Text,
        entity_type -> Text,
        status -> Text,
        record_count -> Integer,
        options -> Nullable<Text>,
        dry_run -> Integer,
        sku_min -> Nullable<Text>,
        sku_max -> Nullable<Text>,
        loc_min -> Nullable<Text>,
        loc_max -> Nullable<Text>,
        attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        created_on -> Timestamp,
        completed_on -> Nullable<Timestamp>,
        meta -> Nullable<Text>,
        preprocessing -> Integer,
        started_on -> Nullable<Timestamp>,
        processed_count -> Integer,
        applied_count -> Nullable<Integer>,
        rejected_count -> Nullable<Integer>,
        unchanged_count -> Nullable<Integer>,
        cancel_requested -> Integer,
        cancelled -> Integer,
    }
}

diesel::table! {
    batch_records (batch_id) {
        batch_id -> BigInt,
        entities -> Text,
    }
}

diesel::table! {
    batch_result_chunks (batch_id, first_seq) {
        batch_id -> BigInt,
        first_seq -> Integer,
        last_seq -> Integer,
        results -> Integer,
        failed -> Integer,
        body -> Text,
    }
}

diesel::table! {
    inventory_positions (id) {
        id -> BigInt,
        retailer_id -> Text,
        location_ref -> Text,
        sku_ref -> Text,
        qty -> BigInt,
        corrected_qty -> Nullable<BigInt>,
        reserved_qty -> Nullable<BigInt>,
        inventory_id -> Nullable<Text>,
        reference -> Nullable<Text>,
        inventory_type -> Text,
        status -> Nullable<Text>,
        attributes -> Nullable<Text>,
        extra -> Nullable<Text>,
        version -> BigInt,
        created_version -> BigInt,
        created_on -> Timestamp,
        updated_on -> Timestamp,
    }
}

diesel::table! {
    inventory_movements (id) {
        id -> BigInt,
        position_id -> BigInt,
        batch_id -> BigInt,
        item_index -> Integer,
        api -> Text,
        operation -> Text,
        previous_qty -> BigInt,
        new_qty -> BigInt,
        reason -> Nullable<Text>,
        reference -> Nullable<Text>,
        created_on -> Timestamp,
    }
}

diesel::table! {
    inventory_items (retailer_id, sku) {
        retailer_id -> Text,
        sku -> Text,
        properties -> Text,
        created_on -> Timestamp,
        updated_on -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        name -> Text,
        key_hash -> Text,
        retailer_id -> Text,
        permissions -> Text,
        default_location -> Text,
        revoked -> Integer,
        created_on -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        fingerprint -> Text,
        status -> Integer,
        response -> Nullable<Text>,
        batch_id -> Nullable<BigInt>,
        created_on -> Timestamp,
    }
}

diesel::table! {
    accept_turns (retailer_id) {
        retailer_id -> Text,
    }
}

diesel::table! {
    executor_heartbeats (owner) {
        owner -> Text,
        last_seen -> Timestamp,
    }
}

diesel::table! {
    webhook_subscriptions (id) {
        id -> BigInt,
        retailer_id -> Nullable<Text>,
        url -> Text,
        events -> Text,
        secret_sealed -> Text,
        created_on -> Timestamp,
    }
}

diesel::table! {
    outbox_events (id) {
        id -> BigInt,
        event_id -> Text,
        name -> Text,
        retailer_id -> Text,
        payload -> Text,
        created_on -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        event_id -> BigInt,
        subscription_id -> BigInt,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        retry_until -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_on -> Timestamp,
        delivered_on -> Nullable<Timestamp>,
    }
}

diesel::table! {
    email_notifications (id) {
        id -> BigInt,
        batch_id -> BigInt,
        recipient -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        retry_until -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_on -> Timestamp,
        sent_on -> Nullable<Timestamp>,
    }
}

diesel::joinable!(webhook_deliveries -> outbox_events (event_id));
diesel::joinable!(webhook_deliveries -> webhook_subscriptions (subscription_id));
diesel::joinable!(batches -> jobs (job_id));
diesel::joinable!(inventory_movements -> inventory_positions (position_id));

diesel::table! {
    retailers (id) {
        id -> Text,
        name -> Text,
        created_on -> Timestamp,
        retention_days -> Nullable<Integer>,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        retailer_id -> Nullable<Text>,
        permissions -> Text,
        disabled -> Integer,
        created_on -> Timestamp,
    }
}

diesel::table! {
    oauth_clients (id) {
        id -> BigInt,
        client_id -> Text,
        secret_hash -> Text,
        disabled -> Integer,
        created_on -> Timestamp,
        retailer_id -> Nullable<Text>,
        permissions -> Nullable<Text>,
    }
}

diesel::table! {
    tokens (token_hash) {
        token_hash -> Text,
        kind -> Text,
        user_id -> Nullable<BigInt>,
        client_id -> BigInt,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_on -> Timestamp,
    }
}

diesel::table! {
    login_failures (username) {
        username -> Text,
        failures -> Integer,
        locked_until -> Nullable<Timestamp>,
        updated_on -> Timestamp,
    }
}

diesel::joinable!(users -> retailers (retailer_id));
diesel::joinable!(tokens -> users (user_id));
diesel::joinable!(tokens -> oauth_clients (client_id));
diesel::allow_tables_to_appear_in_same_query!(
    jobs,
    batches,
    batch_records,
    batch_result_chunks,
    inventory_positions,
    retailers,
    users,
    oauth_clients,
    tokens,
    login_failures,
    inventory_movements,
    inventory_items,
    api_keys,
    idempotency_keys,
    accept_turns,
    executor_heartbeats,
    webhook_subscriptions,
    outbox_events,
    webhook_deliveries,
    email_notifications,
);
