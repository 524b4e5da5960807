-- Action challenges are no longer stored: the server seals them into their identifier
-- (keyfold-auth, action_init). What keeps one from being used twice is this index: an
-- action records the challenge it answered, and a second action for it cannot be inserted.
CREATE UNIQUE INDEX user_actions_challenge ON user_actions (challenge);
