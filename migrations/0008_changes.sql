-- The change stream: the changes of the last revisions, for followers. One
-- row per batch, written in the batch's own transaction, with its changes
-- in kvs-log's record encoding (one group frame per revision); read "after
-- R" as a range scan of the last revisions. Rows without a revision (the
-- original protocol's) are not kept here.
CREATE TABLE IF NOT EXISTS "kvs_changes" (
    "last_revision" BIGINT NOT NULL,
    "first_revision" BIGINT NOT NULL,
    "changes" BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS "kvs_changes_last_revision" ON "kvs_changes" ("last_revision");

-- Every change after this revision is in kvs_changes: the history before
-- this migration, and what trimming removed, is not.
ALTER TABLE "kvs_revision_head" ADD COLUMN IF NOT EXISTS "changes_from" BIGINT NOT NULL DEFAULT 0;
UPDATE "kvs_revision_head" SET "changes_from" = "head";
