-- Shared head of the operation scripts (engine.lua, webhooks.lua): the loader puts it in front
-- of each script's own text, so both read their call the same way. KEYS[1] is the one prefix
-- every key of the script starts with (one hash tag, so one Cluster slot); ARGV[1] names the
-- operation and ARGV[2] is its JSON argument.

local P = KEYS[1]
local op = ARGV[1]
local a = cjson.decode(ARGV[2])

-- The key made of the prefix and the given parts, joined by ':'.
local function k(...)
  return P .. ':' .. table.concat({...}, ':')
end

-- A hash as a table, or nil when the key does not exist.
local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- A stored number, 0 when the field is missing.
local function num(v) return tonumber(v or '0') or 0 end

