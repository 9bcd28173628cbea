//! The one server-side script through which every write goes. It bumps the
//! revision, writes the stream entry and updates the entity and link hashes in one
//! atomic step; `MULTI`/`EXEC` cannot do this because the stream entry id
//! must be the new revision, which only the server knows.
//!
//! Sent with `EVALSHA` and reloaded automatically on `NOSCRIPT` (so it works
//! after a Redis restart, on every cluster node and on Redis 6 and 7).

use redis::Script;

/// Most changes (entities and template links together) one write (one
/// revision) may carry. Keeps a write well inside Lua's argument limits and
/// Redis' latency budget.
pub const MAX_CHANGES_PER_WRITE: usize = 1000;

/// The script text. `KEYS` = entities hash, revision, log stream,
/// generation, links hash. `ARGV` = expected revision (empty: any), stream
/// `MAXLEN` (approximate), a candidate generation (used only by the very
/// first write), a unique write id, then triples of kind (`e` an entity,
/// `l` a template link), key (entity uid or link id) and JSON (empty =
/// delete). Every kind is checked before anything is written. The entry
/// records entities as `u`/`e` fields and links as `l`/`lj`, in order, and
/// the server time of the write in ms (`ts`), from which replicas report
/// their lag. Returns `{"ok", rev}` or `{"conflict", current}`.
pub const WRITE_SCRIPT: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then
  return {'conflict', current}
end
if #ARGV < 7 or (#ARGV - 4) % 3 ~= 0 then
  return redis.error_reply('ERR cedar write: expected kind, key and JSON triples')
end
for i = 5, #ARGV, 3 do
  if ARGV[i] ~= 'e' and ARGV[i] ~= 'l' then
    return redis.error_reply('ERR cedar write: a kind is `e` (entity) or `l` (link)')
  end
end
local gen = redis.call('GET', KEYS[4])
if not gen then
  gen = ARGV[3]
end
local rev = current + 1
local now = redis.call('TIME')
local ts = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local fields = {'gen', gen, 'wid', ARGV[4], 'ts', ts}
for i = 5, #ARGV, 3 do
  if ARGV[i] == 'e' then
    fields[#fields + 1] = 'u'
    fields[#fields + 1] = ARGV[i + 1]
    fields[#fields + 1] = 'e'
  else
    fields[#fields + 1] = 'l'
    fields[#fields + 1] = ARGV[i + 1]
    fields[#fields + 1] = 'lj'
  end
  fields[#fields + 1] = ARGV[i + 2]
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], string.format('%d-0', rev), unpack(fields))
redis.call('SET', KEYS[4], gen)
redis.call('SET', KEYS[2], string.format('%d', rev))
for i = 5, #ARGV, 3 do
  local hash = KEYS[1]
  if ARGV[i] == 'l' then
    hash = KEYS[5]
  end
  if ARGV[i + 2] == '' then
    redis.call('HDEL', hash, ARGV[i + 1])
  else
    redis.call('HSET', hash, ARGV[i + 1], string.format('%d', rev) .. ':' .. ARGV[i + 2])
  end
end
return {'ok', rev}
";

/// The write script, ready for `EVALSHA`.
pub fn write_script() -> Script {
    Script::new(WRITE_SCRIPT)
}
