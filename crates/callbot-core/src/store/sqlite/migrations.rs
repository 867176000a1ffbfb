//! The SQLite schema, as the migrations that build it: `user_version` counts those applied.

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: bots, keys, idempotency, sequences, counters
    "CREATE TABLE api_keys (
        hash TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at TEXT NOT NULL
     );
     CREATE TABLE bots (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        number TEXT NOT NULL UNIQUE,
        number_sid TEXT NOT NULL,
        goal TEXT NOT NULL,
        context TEXT NOT NULL,
        webhook TEXT NOT NULL,
        voice TEXT NOT NULL,
        first_message TEXT,
        status TEXT NOT NULL,
        webhook_secret TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
     );
     CREATE INDEX bots_by_tenant ON bots (tenant, created_at DESC, id DESC);
     CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (tenant, scope, key)
     );
     CREATE TABLE sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
     CREATE TABLE counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    // 2: calls and rate-limit slots
    "CREATE TABLE calls (
        sid TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        bot_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        from_number TEXT NOT NULL,
        to_number TEXT NOT NULL,
        user_label TEXT,
        status TEXT NOT NULL,
        status_seq INTEGER NOT NULL,
        prompt TEXT,
        first_message TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        duration_secs INTEGER,
        list_key TEXT NOT NULL
     );
     CREATE INDEX calls_by_tenant ON calls (tenant, list_key DESC);
     CREATE INDEX calls_by_bot ON calls (bot_id, list_key DESC);
     CREATE TABLE rate_slots (scope TEXT NOT NULL, until_ms INTEGER NOT NULL);
     CREATE INDEX rate_slots_by_scope ON rate_slots (scope, until_ms);",
    // 3: conversation turns
    "CREATE TABLE turns (
        sid TEXT NOT NULL,
        turn INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (sid, turn)
     );",
    // 4: per-bot call timers (JSON, NULL = platform defaults)
    "ALTER TABLE bots ADD COLUMN call_timers TEXT;",
    // 5: how the bot thinks (JSON, NULL = webhook mode with suggestions); webhook '' = none
    "ALTER TABLE bots ADD COLUMN brain TEXT;",
    // 6: LLM usage per tenant and day
    "CREATE TABLE llm_usage (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        requests INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        PRIMARY KEY (tenant, day)
     );",
    // 7: the leg a call came over (twilio, websocket, webrtc); single-use tickets
    "ALTER TABLE calls ADD COLUMN channel TEXT NOT NULL DEFAULT 'twilio';
     CREATE TABLE tickets (
        hash TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        purpose TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
     );",
    // 8: leases (concurrent calls per tenant, observer sockets per user)
    "CREATE TABLE leases (
        scope TEXT NOT NULL,
        holder TEXT NOT NULL,
        until_ms INTEGER NOT NULL,
        PRIMARY KEY (scope, holder)
     );",
    // 9: a bot's options (JSON: time zone, default variables, voicemail); a call's variables
    // (JSON) and what answered it
    "ALTER TABLE bots ADD COLUMN options TEXT;
     ALTER TABLE calls ADD COLUMN variables TEXT;
     ALTER TABLE calls ADD COLUMN answered_by TEXT;",
    // 10: campaigns and their rows (attempts as JSON; outcome = the last attempt's)
    "CREATE TABLE campaigns (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        bot_id TEXT NOT NULL,
        name TEXT NOT NULL,
        calling_window TEXT NOT NULL,
        retry TEXT NOT NULL,
        max_concurrency INTEGER NOT NULL,
        status TEXT NOT NULL,
        row_count INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
     );
     CREATE INDEX campaigns_by_tenant ON campaigns (tenant, id DESC);
     CREATE TABLE campaign_rows (
        campaign_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        to_number TEXT NOT NULL,
        variables TEXT,
        state TEXT NOT NULL,
        attempts TEXT NOT NULL,
        outcome TEXT,
        next_at_ms INTEGER NOT NULL,
        claimed_until_ms INTEGER NOT NULL,
        PRIMARY KEY (campaign_id, idx)
     );
     CREATE INDEX campaign_rows_by_state ON campaign_rows (campaign_id, state, next_at_ms);",
    // 11: what follows a call's end (events, analysis): NULL until done, held by a worker until
    // post_call_until; calls before this version count as done
    "ALTER TABLE calls ADD COLUMN post_call TEXT;
     ALTER TABLE calls ADD COLUMN post_call_until INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE calls ADD COLUMN analysis TEXT;
     UPDATE calls SET post_call = 'done';
     CREATE INDEX calls_post_call ON calls (updated_at) WHERE post_call IS NULL;",
    // 12: how many of a campaign's rows were handed to a queue-driven dialer
    "ALTER TABLE campaigns ADD COLUMN released INTEGER NOT NULL DEFAULT 0;",
    // 13: test runs (`POST /bots/{id}/tests`): keys in columns, the rest as a JSON document
    "CREATE TABLE test_runs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        bot_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX test_runs_by_bot ON test_runs (tenant, bot_id, id DESC);",
];
