-- Challenges an agent answers on its machine for a certificate whose key it keeps (http-01,
-- tls-alpn-01): the ordering process writes one 'wanted', the agent presents it and says
-- 'presented' or 'failed' (with why); after validation the orderer sets 'cleanup', and the
-- agent's word that it removed it deletes the row. Times are epoch milliseconds.
CREATE TABLE agent_challenges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    cert_name TEXT NOT NULL,
    token TEXT NOT NULL,
    config TEXT NOT NULL,
    challenge TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL
);

CREATE INDEX agent_challenges_agent ON agent_challenges (agent_id);
CREATE INDEX agent_challenges_token ON agent_challenges (cert_name, token);
