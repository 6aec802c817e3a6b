SELECT c.oid::regclass AS other FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'idempotency_records'::regclass AND NOT i.inhdetachpending
 ORDER BY c.relname DESC LIMIT 1 \gset
ALTER TABLE idempotency_records DETACH PARTITION :other CONCURRENTLY;
