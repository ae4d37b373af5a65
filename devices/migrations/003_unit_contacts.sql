-- How a unit is reached when dispatched: notification channel ids (its group's robot, its
-- mailbox), and the mobiles and 企业微信 user ids those messages call out.
ALTER TABLE units ADD COLUMN contacts jsonb NOT NULL DEFAULT '{}'::jsonb;
