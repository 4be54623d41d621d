-- Schema version 5: devices that receive notifications while their app is closed (issue 10),
-- each registered to one account, found by its RegistrationID and by its account.
CREATE TABLE devices (
    app bigint NOT NULL,
    registration_id text NOT NULL,
    account integer NOT NULL,
    device text NOT NULL,
    PRIMARY KEY (app, registration_id)
);
CREATE INDEX devices_of_account ON devices (app, account);
