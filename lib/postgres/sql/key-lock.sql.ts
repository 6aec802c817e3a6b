/**
 * The advisory lock id of a key ($1 scope, $2 key). The partitioned layout takes it before every
 * write of the key; the single table's transactional claim tries it to tell "busy" from "new".
 */
export const KEY_LOCK = `hashtextextended($1::text || E'\\n' || $2::text, 0)`;
