-- Schema version 7: RegistrationID accounts (issue 10). A tag is bound to the kind of the
-- accounts that have it, as AttrTypes numbers it: 0 = UserID, 1 = RegistrationID.
ALTER TABLE tags ADD COLUMN kind smallint NOT NULL DEFAULT 0;
