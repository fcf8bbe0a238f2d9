-- A change to one set member or map field deletes the earlier changes of
-- that member or field: these make finding them a lookup, however many
-- entries the key has.
CREATE INDEX IF NOT EXISTS "set_members_key_member" ON "set_members" ("set_key_id", "member");
CREATE INDEX IF NOT EXISTS "map_key_value_pairs_key_field" ON "map_key_value_pairs" ("map_key_id", "key");
