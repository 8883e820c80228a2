-- Agents: the certhub processes on target machines that join the hub with a one-time token
-- and then deploy the certificates targeted at them. Times are epoch milliseconds.

-- A join token: one use, until it expires; its secret is kept only as a SHA-256 hash. The
-- labels are given to the agent that uses it (a JSON object).
CREATE TABLE agent_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    agent_id TEXT
);

-- A joined agent. Its identity is the client certificate the agent authority signed, naming
-- urn:certhub:agent:ID; removing the agent deletes its row, and with it the identity.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    cert_serial TEXT NOT NULL,
    hostname TEXT,
    os TEXT,
    version TEXT,
    discovered TEXT,
    joined_at BIGINT NOT NULL,
    last_seen_at BIGINT
);

-- An agent's labels, each KEY=VALUE.
CREATE TABLE agent_labels (
    agent_id TEXT NOT NULL REFERENCES agents (id),
    label TEXT NOT NULL,
    PRIMARY KEY (agent_id, label)
);

CREATE INDEX agent_labels_label ON agent_labels (label);

-- Where a certificate is deployed: 'agent:NAME' or 'label:KEY=VALUE'.
CREATE TABLE cert_targets (
    cert_name TEXT NOT NULL REFERENCES certs (name),
    target TEXT NOT NULL,
    PRIMARY KEY (cert_name, target)
);

CREATE INDEX cert_targets_target ON cert_targets (target);

-- What each agent last reported of a certificate: the serial it deployed and when, or why
-- it could not; and which serial its endpoints serve.
CREATE TABLE agent_deployments (
    agent_id TEXT NOT NULL REFERENCES agents (id),
    cert_name TEXT NOT NULL REFERENCES certs (name),
    state TEXT NOT NULL,
    serial_hex TEXT,
    deployed_at BIGINT,
    error TEXT,
    verified TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, cert_name)
);

CREATE INDEX agent_deployments_cert ON agent_deployments (cert_name);
