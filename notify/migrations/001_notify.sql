-- Where notifications go: a webhook, a chat robot or a mailbox, owned by an area.
CREATE TABLE channels (
    id          text        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('webhook', 'wecom', 'dingtalk', 'feishu',
                                                      'email')),
    name        text        NOT NULL,
    area        text        NOT NULL,  -- the owner's area: it hears only incidents under it
    url         text        NOT NULL,
    secret      text,                  -- signing key or password; never returned by the API
    settings    jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- mentions, email, language, rate
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Which incident events go to which channels.
CREATE TABLE routes (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    scope       text        NOT NULL,  -- the owner's area: the route matches nothing outside
    document    jsonb       NOT NULL,
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One message to one channel about one incident event: the delivery queue and its log.
CREATE TABLE notifications (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        bigint      NOT NULL,  -- the incident event behind it
    incident_id     bigint      NOT NULL,
    area            text        NOT NULL,  -- the incident's: who may read the row
    event           text        NOT NULL,  -- incident.created, ..., incident.repeat, incident.dispatched
    reason          text        NOT NULL,  -- route:<id> or unit:<id>
    repeat_no       smallint    NOT NULL DEFAULT 0,
    channel_id      text        NOT NULL,
    idempotency_key uuid        NOT NULL DEFAULT gen_random_uuid(),
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    claimed_until   timestamptz,
    claimed_by      integer,               -- the sender's id; its advisory lock says it lives
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_status     integer,
    last_answer     text,
    request_id      bigint,
    UNIQUE (event_id, reason, channel_id, repeat_no)
);
CREATE INDEX notifications_due ON notifications (channel_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notifications_sending ON notifications (claimed_by) WHERE status = 'sending';
CREATE INDEX notifications_incident ON notifications (incident_id, id);

-- Each request made to a channel (one message may name several incidents).
CREATE TABLE notify_requests (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id  text        NOT NULL,
    sent_at     timestamptz NOT NULL,
    status      integer,
    answer      text,
    notifications bigint[]  NOT NULL
);
CREATE INDEX notify_requests_channel ON notify_requests (channel_id, sent_at);

-- A rate-limited channel's token bucket, shared by every sender process.
CREATE TABLE channel_budgets (
    channel_id  text        PRIMARY KEY,
    tokens      double precision NOT NULL,
    at          timestamptz NOT NULL
);

-- Operators' own wording of a message kind, in a language.
CREATE TABLE notify_templates (
    kind        text        NOT NULL,
    language    text        NOT NULL,
    title       text        NOT NULL,
    body        text        NOT NULL,
    updated_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, language)
);

-- Links sent to a dispatched unit: they act on that one incident only.
CREATE TABLE unit_links (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint      NOT NULL,
    unit_id     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, unit_id)
);
