-- Work several hubs share through one database.
--
-- A renewal admitted under a CA's rate limits holds its place in the budget until its order
-- is placed (the order then counts) or the hold ends: admission and hold are one
-- transaction, so hubs admitting at once never spend the same allowance.
CREATE TABLE budget_holds (
    cert_name TEXT PRIMARY KEY,
    account_name TEXT NOT NULL,
    -- The certificate's names, lower case, separated by spaces.
    names TEXT NOT NULL,
    ari_renewal BIGINT NOT NULL,
    held_at BIGINT NOT NULL,
    -- When the hold ends if no order was placed (the hub that took it stopped).
    until_at BIGINT NOT NULL
);

-- Failed sign-ins, counted per address and per address and name, whichever hub saw them.
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);
