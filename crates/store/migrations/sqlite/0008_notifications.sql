-- Notification channels: where the hub sends events (an SMTP server, a Slack incoming webhook,
-- a callback URL). config is encrypted JSON (it holds passwords, webhook URLs and secrets);
-- events is the space-separated list of event kinds the channel wants.
CREATE TABLE notification_channels (
    name       TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    config     BLOB    NOT NULL,
    events     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- Notices sent once per occasion (e.g. "expiring within 30 days" for one issued
-- certificate), so that a restart or a second hub does not send them again.
CREATE TABLE notices (
    cert_name TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    occasion  TEXT   NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (cert_name, kind, occasion)
);
