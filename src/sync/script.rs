//! The one server-side script through which every write goes. It bumps the
//! revision, writes the stream entry and updates the entity hash in one
//! atomic step; `MULTI`/`EXEC` cannot do this because the stream entry id
//! must be the new revision, which only the server knows.
//!
//! Sent with `EVALSHA` and reloaded automatically on `NOSCRIPT` (so it works
//! after a Redis restart, on every cluster node and on Redis 6 and 7).

use redis::Script;

/// Most entity changes one write (one revision) may carry. Keeps a write
/// well inside Lua's argument limits and Redis' latency budget.
pub const MAX_CHANGES_PER_WRITE: usize = 1000;

/// The script text. `KEYS` = entities hash, revision, log stream,
/// generation. `ARGV` = expected revision (empty: any), stream `MAXLEN`
/// (approximate), a candidate generation (used only by the very first
/// write), a unique write id, then pairs of entity uid and entity JSON
/// (empty JSON = delete). The entry also records the server time of the
/// write in ms (`ts`), from which replicas report their lag. Returns `{"ok", rev}` or `{"conflict", current}`.
pub const WRITE_SCRIPT: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then
  return {'conflict', current}
end
if #ARGV < 6 or (#ARGV - 4) % 2 ~= 0 then
  return redis.error_reply('ERR cedar write: expected uid and entity pairs')
end
local gen = redis.call('GET', KEYS[4])
if not gen then
  gen = ARGV[3]
end
local rev = current + 1
local now = redis.call('TIME')
local ts = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local fields = {'gen', gen, 'wid', ARGV[4], 'ts', ts}
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = 'u'
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = 'e'
  fields[#fields + 1] = ARGV[i + 1]
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], string.format('%d-0', rev), unpack(fields))
redis.call('SET', KEYS[4], gen)
redis.call('SET', KEYS[2], string.format('%d', rev))
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], string.format('%d', rev) .. ':' .. ARGV[i + 1])
  end
end
return {'ok', rev}
";

/// The write script, ready for `EVALSHA`.
pub fn write_script() -> Script {
    Script::new(WRITE_SCRIPT)
}
