-- Webhook endpoints and the webhook outbox: every change that reads and writes more than one key
-- runs here, in one atomic script. KEYS[1] is the webhook tag's prefix ("pe:{hooks}"); every key
-- below is that prefix plus a suffix, so all of them live in one Redis Cluster slot.
-- ARGV[1] names the operation, ARGV[2] is its JSON argument. Times arrive from the caller's Clock
-- as decimal strings (Python's repr: a Lua number handed to redis.call would be cut to 14
-- digits) and are stored as given; sums are written back with 17 digits. The script never reads
-- a clock itself.
--
-- Keys (after the prefix):
--   ep:<id>          endpoint hash            eps:<owner>     endpoint ids (zset, by id)
--   msg:<id>         message hash             att:<id>        its attempts (list of JSON)
--   due              pending messages nobody holds and whose endpoint is enabled (zset, due time)
--   parked:<ep>      pending messages of a disabled endpoint (zset, due time)
--   leases           messages held by a sender (zset, lease end)
--   own:<owner>      an owner's messages (zset, created time)   byep:<ep>  the same per endpoint
--   byjob:<owner>:<job>  a job's messages (set)      finished  succeeded/failed (zset, updated)
--   prog:<ep>        job id -> its progress message still open to coalescing (hash)
--   buf:<ep>, bufdata:<ep>, bufprog:<ep>  the endpoint's batching buffer; buffered (set of ep ids)
--   bufseq           buffer entry counter     relayed         relayed event ids (zset, time)
--   rotated          endpoints with a previous secret (zset, when it stops signing)

-- P, op, a, k(), hgetall() and num() come from prelude.lua, put in front of this text.

-- Numbers as Python's repr writes them (17 significant digits round-trip a double).
local function text(n) return string.format('%.17g', n) end

local function is_null(v) return v == nil or v == cjson.null end

local function endpoint_of(id, owner)
  local e = hgetall(k('ep', id))
  if e == nil or e.owner ~= owner then return nil end
  return e
end

-- The one place a pending, unheld message becomes claimable: parked instead while its endpoint
-- is disabled, so a claim never has to step over a disabled endpoint's backlog.
local function make_due(id, ep, at)
  if ep ~= '' and redis.call('HGET', k('ep', ep), 'disabled') ~= '0' then
    redis.call('ZADD', k('parked', ep), at, id)
  else
    redis.call('ZADD', k('due'), at, id)
  end
end

local function park(ep)
  for _, id in ipairs(redis.call('ZRANGE', k('byep', ep), 0, -1)) do
    local at = redis.call('ZSCORE', k('due'), id)
    if at then
      redis.call('ZREM', k('due'), id)
      redis.call('ZADD', k('parked', ep), at, id)
    end
  end
end

local function unpark(ep)
  local parked = redis.call('ZRANGE', k('parked', ep), 0, -1, 'WITHSCORES')
  for i = 1, #parked, 2 do redis.call('ZADD', k('due'), parked[i + 1], parked[i]) end
  redis.call('DEL', k('parked', ep))
end

local function disable(ep, reason, now)
  local e = hgetall(k('ep', ep))
  if e == nil or e.disabled ~= '0' then return end
  redis.call('HSET', k('ep', ep), 'disabled', '1', 'disabled_reason', reason,
    'version', num(e.version) + 1, 'updated_at', now)
  park(ep)
end

local function insert(m)
  local key = k('msg', m.id)
  if redis.call('EXISTS', key) == 1 then return false end  -- the same event, relayed again
  redis.call('HSET', key, 'id', m.id, 'endpoint_id', m.endpoint_id, 'url', m.url,
    'owner', m.owner, 'job_id', m.job_id, 'event_type', m.event_type, 'body', m.body,
    'event_count', m.event_count or 1, 'status', 'pending', 'tries', 0,
    'next_attempt_at', m.now, 'created_at', m.now, 'updated_at', m.now)
  redis.call('ZADD', k('own', m.owner), m.now, m.id)
  if m.endpoint_id ~= '' then redis.call('ZADD', k('byep', m.endpoint_id), m.now, m.id) end
  if m.job_id ~= '' then redis.call('SADD', k('byjob', m.owner, m.job_id), m.id) end
  make_due(m.id, m.endpoint_id, m.now)
  return true
end

local function delete_message(id)
  local m = hgetall(k('msg', id))
  if m == nil then return 0 end
  redis.call('DEL', k('msg', id), k('att', id))
  redis.call('ZREM', k('due'), id)
  redis.call('ZREM', k('leases'), id)
  redis.call('ZREM', k('finished'), id)
  redis.call('ZREM', k('own', m.owner), id)
  if m.endpoint_id ~= '' then
    redis.call('ZREM', k('byep', m.endpoint_id), id)
    redis.call('ZREM', k('parked', m.endpoint_id), id)
    if m.job_id ~= '' and redis.call('HGET', k('prog', m.endpoint_id), m.job_id) == id then
      redis.call('HDEL', k('prog', m.endpoint_id), m.job_id)
    end
  end
  if m.job_id ~= '' then redis.call('SREM', k('byjob', m.owner, m.job_id), id) end
  return 1
end

-- The message is queued again now with a fresh retry budget (its attempts are kept).
local function requeue(id, m, trigger, now)
  redis.call('HSET', k('msg', id), 'status', 'pending', 'tries', 0, 'next_attempt_at', now,
    'requeued_by', trigger, 'updated_at', now)
  redis.call('HDEL', k('msg', id), 'lease_until', 'lease_owner')
  redis.call('ZREM', k('leases'), id)
  redis.call('ZREM', k('finished'), id)
  make_due(id, m.endpoint_id, now)
end

local function subscribed(event_types, event_type)
  local wildcard = false
  for _, t in ipairs(event_types) do
    if t == event_type then return true end
    if t == '*' then wildcard = true end
  end
  return wildcard and (event_type == 'job.succeeded' or event_type == 'job.failed'
    or event_type == 'job.canceled')
end

local function same_list(x, y)
  if #x ~= #y then return false end
  for i = 1, #x do if x[i] ~= y[i] then return false end end
  return true
end

-- Endpoints -------------------------------------------------------------------------------------

if op == 'create_endpoint' then
  redis.call('HSET', k('ep', a.id), unpack(a.fields))
  redis.call('ZADD', k('eps', a.owner), 0, a.id)
  return 1

elseif op == 'update_endpoint' then
  -- The caller checked its precondition against this version; a change since is a retry.
  local e = endpoint_of(a.id, a.owner)
  if e == nil then return 'missing' end
  if e.version ~= a.version then return 'changed' end
  if #a.set == 0 and #a.clear == 0 then return 'ok' end
  if #a.set > 0 then redis.call('HSET', k('ep', a.id), unpack(a.set)) end
  if #a.clear > 0 then redis.call('HDEL', k('ep', a.id), unpack(a.clear)) end
  redis.call('HSET', k('ep', a.id), 'version', num(e.version) + 1, 'updated_at', a.now)
  local disabled = redis.call('HGET', k('ep', a.id), 'disabled')
  if disabled == '1' and e.disabled ~= '1' then park(a.id) end
  if disabled == '0' and e.disabled ~= '0' then unpark(a.id) end
  return 'ok'

elseif op == 'delete_endpoint' then
  local e = endpoint_of(a.id, a.owner)
  if e == nil then return 'missing' end
  if e.version ~= a.version then return 'changed' end
  for _, id in ipairs(redis.call('ZRANGE', k('byep', a.id), 0, -1)) do delete_message(id) end
  redis.call('DEL', k('ep', a.id), k('byep', a.id), k('parked', a.id), k('prog', a.id),
    k('buf', a.id), k('bufdata', a.id), k('bufprog', a.id))
  redis.call('SREM', k('buffered'), a.id)
  redis.call('ZREM', k('rotated'), a.id)
  redis.call('ZREM', k('eps', a.owner), a.id)
  return 'ok'

elseif op == 'rotate_secret' then
  local e = endpoint_of(a.id, a.owner)
  if e == nil then return 'missing' end
  redis.call('HSET', k('ep', a.id), 'old_secret', e.secret, 'old_secret_expires_at', a.until_at,
    'secret', a.secret, 'version', num(e.version) + 1, 'updated_at', a.now)
  redis.call('ZADD', k('rotated'), a.until_at, a.id)
  return 'ok'

-- Enqueue ---------------------------------------------------------------------------------------

elseif op == 'relay' then
  -- Once per event id. The caller read the owner's endpoints to name their messages; if that
  -- list changed since, it reads again (-1) rather than miss a new endpoint.
  if redis.call('ZSCORE', k('relayed'), a.event_id) then return 0 end
  local ids = {}
  for ep in pairs(a.endpoints) do ids[#ids + 1] = ep end
  table.sort(ids)
  if not same_list(redis.call('ZRANGE', k('eps', a.owner), 0, -1), ids) then return -1 end
  redis.call('ZADD', k('relayed'), a.now, a.event_id)
  local written = 0
  local progress = a.event_type == 'job.progress'
  for _, ep in ipairs(ids) do
    local e = hgetall(k('ep', ep))
    if e.disabled == '0' and subscribed(cjson.decode(e.event_types), a.event_type) then
      if num(e.batch_max_events) > 0 then
        if progress then  -- only the latest progress of a job matters
          local old = redis.call('HGET', k('bufprog', ep), a.job_id)
          if old then
            redis.call('ZREM', k('buf', ep), old)
            redis.call('HDEL', k('bufdata', ep), old)
          end
        end
        local seq = redis.call('INCR', k('bufseq'))
        redis.call('ZADD', k('buf', ep), seq, seq)
        redis.call('HSET', k('bufdata', ep), seq, cjson.encode({
          job_id = a.job_id, event_type = a.event_type, payload = a.body, created_at = a.now}))
        if progress then redis.call('HSET', k('bufprog', ep), a.job_id, seq) end
        redis.call('SADD', k('buffered'), ep)
      else
        -- A progress message not yet tried takes the newer body, so a 1,000-image job does not
        -- queue 1,000 callbacks; its webhook-id was never sent, so nothing is lost.
        local coalesced = false
        if progress then
          local open = redis.call('HGET', k('prog', ep), a.job_id)
          local m = open and hgetall(k('msg', open))
          if m and m.status == 'pending' and m.tries == '0' and m.lease_until == nil then
            redis.call('HSET', k('msg', open), 'body', a.body, 'updated_at', a.now)
            coalesced = true
          end
        end
        if not coalesced then
          local id = a.endpoints[ep]
          insert({id = id, endpoint_id = ep, url = e.url, owner = a.owner, job_id = a.job_id,
            event_type = a.event_type, body = a.body, now = a.now})
          if progress then redis.call('HSET', k('prog', ep), a.job_id, id) end
        end
      end
      written = written + 1
    end
  end
  if not is_null(a.callback) then
    insert({id = a.callback.id, endpoint_id = '', url = a.callback.url, owner = a.owner,
      job_id = a.job_id, event_type = a.event_type, body = a.body, now = a.now})
    written = written + 1
  end
  return written

elseif op == 'forget_job' then
  -- The job is gone: its finished messages' links are dead, so they go too.
  if redis.call('ZSCORE', k('relayed'), a.event_id) then return 0 end
  redis.call('ZADD', k('relayed'), a.now, a.event_id)
  local removed = 0
  for _, id in ipairs(redis.call('SMEMBERS', k('byjob', a.owner, a.job_id))) do
    if redis.call('HGET', k('msg', id), 'status') ~= 'pending' then
      removed = removed + delete_message(id)
    end
  end
  return removed

elseif op == 'enqueue_test' then
  local e = endpoint_of(a.endpoint_id, a.owner)
  if e == nil then return nil end
  insert({id = a.id, endpoint_id = a.endpoint_id, url = e.url, owner = a.owner, job_id = '',
    event_type = a.event_type, body = a.body, now = a.now})
  return a.id

elseif op == 'form_batch' then
  -- The caller read these buffered entries; they become one message only if they are still
  -- the oldest of the buffer (another node may have formed the batch already).
  local ep = a.endpoint_id
  local e = hgetall(k('ep', ep))
  if e == nil or e.disabled ~= '0' then return 0 end
  if not same_list(redis.call('ZRANGE', k('buf', ep), 0, #a.seqs - 1), a.seqs) then return 0 end
  for _, seq in ipairs(a.seqs) do
    local entry = cjson.decode(redis.call('HGET', k('bufdata', ep), seq))
    if entry.event_type == 'job.progress'
      and redis.call('HGET', k('bufprog', ep), entry.job_id) == seq then
      redis.call('HDEL', k('bufprog', ep), entry.job_id)
    end
    redis.call('ZREM', k('buf', ep), seq)
    redis.call('HDEL', k('bufdata', ep), seq)
  end
  if redis.call('ZCARD', k('buf', ep)) == 0 then redis.call('SREM', k('buffered'), ep) end
  insert({id = a.id, endpoint_id = ep, url = e.url, owner = e.owner, job_id = '',
    event_type = 'batch', body = a.body, now = a.now, event_count = #a.seqs})
  return 1

-- Sending ---------------------------------------------------------------------------------------

elseif op == 'claim' then
  -- What every sender of the deployment holds now, per destination and per tenant: the caps
  -- count these, not only what this sender knows it holds.
  local now = a.now
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('leases'), '-inf', '(' .. now)) do
    -- The holder is gone (or too slow): the message is claimable again.
    redis.call('ZREM', k('leases'), id)
    local m = hgetall(k('msg', id))
    if m and m.status == 'pending' then make_due(id, m.endpoint_id, m.next_attempt_at) end
  end
  local in_flight, by_tenant = {}, {}
  for _, id in ipairs(redis.call('ZRANGE', k('leases'), 0, -1)) do
    local fields = redis.call('HMGET', k('msg', id), 'endpoint_id', 'url', 'owner')
    local dest = fields[1] ~= '' and fields[1] or ('callback:' .. fields[2])
    in_flight[dest] = (in_flight[dest] or 0) + 1
    by_tenant[fields[3]] = (by_tenant[fields[3]] or 0) + 1
  end
  -- This sender's own count can be ahead of Redis (an attempt recorded, its thread not yet
  -- done): the larger of the two is what is in flight.
  for dest, n in pairs(a.busy) do in_flight[dest] = math.max(in_flight[dest] or 0, n) end
  for tenant, n in pairs(a.busy_tenants) do
    by_tenant[tenant] = math.max(by_tenant[tenant] or 0, n)
  end
  local claimed = {}
  local candidates = redis.call('ZRANGEBYSCORE', k('due'), '-inf', now, 'LIMIT', 0, a.limit * 50)
  for _, id in ipairs(candidates) do
    if #claimed >= a.limit then break end
    local m = hgetall(k('msg', id))
    local dest = m and (m.endpoint_id ~= '' and m.endpoint_id or ('callback:' .. m.url))
    if m == nil or m.status ~= 'pending' then
      redis.call('ZREM', k('due'), id)  -- not claimable (never left here by the script itself)
    elseif (in_flight[dest] or 0) < a.cap and (by_tenant[m.owner] or 0) < a.tenant_cap then
      in_flight[dest] = (in_flight[dest] or 0) + 1
      by_tenant[m.owner] = (by_tenant[m.owner] or 0) + 1
      local lease_until = text(tonumber(now) + a.lease_s)
      redis.call('HSET', k('msg', id), 'lease_until', lease_until, 'lease_owner', a.owner)
      redis.call('ZREM', k('due'), id)
      redis.call('ZADD', k('leases'), lease_until, id)
      local url, secret, old_secret, old_until = m.url, '', '', ''
      if m.endpoint_id ~= '' then
        local e = redis.call('HMGET', k('ep', m.endpoint_id), 'url', 'secret', 'old_secret',
          'old_secret_expires_at')
        url, secret, old_secret, old_until = e[1], e[2], e[3] or '', e[4] or ''
      end
      claimed[#claimed + 1] = {id, m.endpoint_id, url, m.body, m.tries, m.requeued_by or '',
        m.owner, secret, old_secret, old_until}
    end
  end
  return claimed

elseif op == 'record_attempt' then
  local key = k('msg', a.id)
  local m = hgetall(key)
  if m == nil then return 'deleted' end
  redis.call('RPUSH', k('att', a.id), a.attempt)
  if m.lease_owner ~= a.lease_owner or m.status ~= 'pending' then
    return m.status  -- someone else took it over; keep their state
  end
  local now = a.now
  -- A lease that ran out may have put the message back in the due set already.
  redis.call('ZREM', k('leases'), a.id)
  redis.call('ZREM', k('due'), a.id)
  redis.call('HDEL', key, 'lease_until', 'lease_owner', 'requeued_by')
  local ep = m.endpoint_id
  if a.success then
    redis.call('HSET', key, 'status', 'succeeded', 'tries', a.tries, 'updated_at', now)
    redis.call('HDEL', key, 'last_error')
    redis.call('ZADD', k('finished'), now, a.id)
    if ep ~= '' then redis.call('HDEL', k('ep', ep), 'failing_since', 'failing_since_iso') end
    return 'succeeded'
  end
  local status = is_null(a.retry_in) and 'failed' or 'pending'
  local next_at = tonumber(now) + (is_null(a.retry_in) and 0 or a.retry_in)
  redis.call('HSET', key, 'status', status, 'tries', a.tries, 'next_attempt_at', text(next_at),
    'updated_at', now)
  if is_null(a.error) then
    redis.call('HDEL', key, 'last_error')
  else
    redis.call('HSET', key, 'last_error', a.error)
  end
  if status == 'pending' then
    make_due(a.id, ep, next_at)
  else
    redis.call('ZADD', k('finished'), now, a.id)
  end
  -- The endpoint's failure state and its disabling in the same step: two senders failing at
  -- once cannot both decide, or undo each other.
  if ep ~= '' and redis.call('EXISTS', k('ep', ep)) == 1 then
    if a.gone then
      disable(ep, 'the endpoint answered 410 Gone', now)
    else
      redis.call('HSETNX', k('ep', ep), 'failing_since', now)
      redis.call('HSETNX', k('ep', ep), 'failing_since_iso', a.now_iso)
      local since = redis.call('HMGET', k('ep', ep), 'failing_since', 'failing_since_iso')
      if tonumber(now) - num(since[1]) >= a.disable_after_s then
        disable(ep, 'every delivery has failed since ' .. since[2], now)
      end
    end
  end
  return status

-- Dead letters and recovery ---------------------------------------------------------------------

elseif op == 'resend' then
  local m = hgetall(k('msg', a.id))
  if m == nil or m.owner ~= a.owner
    or (not is_null(a.endpoint_id) and m.endpoint_id ~= a.endpoint_id) then
    return 'missing'
  end
  if m.status == 'pending' and m.lease_until and num(m.lease_until) >= tonumber(a.now) then
    return 'busy'
  end
  requeue(a.id, m, 'resend', a.now)
  return 'ok'

elseif op == 'recover' then
  if endpoint_of(a.endpoint_id, a.owner) == nil then return -1 end
  local count = 0
  local window = redis.call('ZRANGEBYSCORE', k('byep', a.endpoint_id), a.since, '(' .. a.until_at)
  for _, id in ipairs(window) do
    local m = hgetall(k('msg', id))
    if m.status == 'failed' then
      requeue(id, m, 'recover', a.now)
      count = count + 1
    end
  end
  return count

-- Housekeeping ----------------------------------------------------------------------------------

elseif op == 'purge' then
  -- A bounded step: a large backlog is removed over the following calls.
  local old = redis.call('ZRANGEBYSCORE', k('finished'), '-inf', '(' .. a.cutoff,
    'LIMIT', 0, a.batch)
  local removed = 0
  for _, id in ipairs(old) do removed = removed + delete_message(id) end
  for _, ep in ipairs(redis.call('ZRANGEBYSCORE', k('rotated'), '-inf', a.now)) do
    redis.call('HDEL', k('ep', ep), 'old_secret', 'old_secret_expires_at')
    redis.call('ZREM', k('rotated'), ep)
  end
  redis.call('ZREMRANGEBYSCORE', k('relayed'), '-inf', '(' .. a.relayed_cutoff)
  return removed
end

return redis.error_reply('unknown webhook operation ' .. tostring(op))
