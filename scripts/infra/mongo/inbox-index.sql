-- An index FerretDB 1.24 can use for the inbox's reads, in the PostgreSQL database it stores into.
--
-- FerretDB 1.24 turns `find({ user_id })` into `WHERE _jsonb->'user_id' @> $1` (JSONB
-- containment), which the btree indexes it builds for `createIndexes` (on `_jsonb->'user_id'`)
-- cannot serve: every inbox read scanned the whole collection, ~0.7 s a query at 2.3 million
-- entries. A GIN index on the same expression serves containment: ~1 ms plus the user's own
-- entries. The same on `_jsonb->'server_id'` serves `find({ server_id })`. FerretDB knows nothing
-- of them (they are not in `listIndexes`) and drops them with the table.
-- MongoDB uses the compound indexes the db service creates; this is for the local stand-in only.
--
-- Each inbox table FerretDB creates (named `inbox_<hash>`, in the schema named after the
-- database, whatever MONGO_DB says) gets the index from an event trigger, at once; tables that
-- exist already get it here. Run by mongo.sh on every `up`; running it again changes nothing.

CREATE OR REPLACE FUNCTION im_inbox_user_index(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  field text;
BEGIN
  -- user_id for a user's reads; server_id for the lookup of a group message's entries, one
  -- query per message (MongoInboxStore's findKeys), which a replayed fan-out makes.
  FOREACH field IN ARRAY ARRAY['user_id', 'server_id'] LOOP
    EXECUTE format(
      'CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L) jsonb_path_ops)',
      (SELECT relname FROM pg_class WHERE oid = target) || '_' || field || '_gin', target, field
    );
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION im_inbox_user_index_on_create() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  created record;
BEGIN
  FOR created IN
    SELECT c.oid FROM pg_event_trigger_ddl_commands() d JOIN pg_class c ON c.oid = d.objid
    WHERE d.command_tag = 'CREATE TABLE' AND c.relkind = 'r' AND c.relname LIKE 'inbox\_%'
  LOOP
    PERFORM im_inbox_user_index(created.oid);
  END LOOP;
END $$;

DROP EVENT TRIGGER IF EXISTS im_inbox_user_index;
CREATE EVENT TRIGGER im_inbox_user_index ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION im_inbox_user_index_on_create();

-- Inbox tables created before the trigger was.
SELECT im_inbox_user_index(c.oid)
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = '_jsonb'
WHERE c.relkind = 'r' AND c.relname LIKE 'inbox\_%';
