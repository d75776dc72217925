-- The job engine of one partition: every state change of a job, its tasks and its event log in
-- one atomic script. KEYS[1] is the partition's prefix ("pe:{p7}"); every key the script touches
-- is that prefix plus a suffix, so all of them live in one Redis Cluster slot.
-- ARGV[1] names the operation, ARGV[2] is its JSON argument. Times arrive as strings computed by
-- the caller from its one Clock (never redis TIME), and are stored as given.

-- P, op, a, k(), hgetall() and num() come from prelude.lua, put in front of this text.

local function emit(id, kind, now, snapshot)
  local doc = snapshot or hgetall(k('job', id))
  if doc == nil then return end
  local public = {}
  for name, value in pairs(doc) do
    if string.sub(name, 1, 4) ~= 'tok:' then public[name] = value end
  end
  public['inputs'] = nil
  redis.call('XADD', k('events'), '*', 'type', kind, 'at', now, 'job', cjson.encode(public))
end

local function set_status(id, j, status)
  if j.status then redis.call('HINCRBY', k('counts'), j.status, -1) end
  redis.call('HINCRBY', k('counts'), status, 1)
  redis.call('HSET', k('job', id), 'status', status)
  j.status = status
end

local function visible(j, tenant, now)
  return j ~= nil and (tenant == '' or j.tenant == tenant)
    and (j.expires_at == nil or num(j.expires_at) > num(now))
end

local function task_names(j)
  local names = {}
  for c = 0, num(j.chunks) - 1 do names[#names + 1] = tostring(c) end
  names[#names + 1] = 'a'
  return names
end

local function task_score(j, c)
  if c == 'a' then return num(j.seq) * 100000 + 99999 end
  return num(j.seq) * 100000 + num(c)
end

local function enqueue_task(id, j, c)
  redis.call('HSET', k('task', id, c), 'state', 'queued')
  redis.call('ZADD', k('tq', j.tenant), task_score(j, c), id .. ':' .. c)
  if not redis.call('LPOS', k('ring'), j.tenant) then
    redis.call('RPUSH', k('ring'), j.tenant)
  end
end

-- A task stops running (finished, handed back, reaped): the tenant's and the job's counts.
local function stop_running(id, j, c)
  redis.call('ZREM', k('leases'), id .. ':' .. c)
  redis.call('HINCRBY', k('busy'), j.tenant, -1)
  j.running = tostring(redis.call('HINCRBY', k('job', id), 'running', -1))
end

-- The job is final: no task of it may run or wait any more.
local function end_job(id, j, status, now, expires_at)
  for _, c in ipairs(task_names(j)) do
    local member = id .. ':' .. c
    redis.call('ZREM', k('tq', j.tenant), member)
    if redis.call('HGET', k('task', id, c), 'state') == 'running' then
      redis.call('ZREM', k('leases'), member)
      redis.call('HINCRBY', k('busy'), j.tenant, -1)
    end
    redis.call('DEL', k('task', id, c))
  end
  redis.call('DEL', k('inflight', id))
  redis.call('HINCRBY', k('depth'), j.tenant, -num(j.images))
  redis.call('HINCRBY', k('active'), j.tenant, -1)
  set_status(id, j, status)
  redis.call('HSET', k('job', id), 'running', 0, 'finished_at', now, 'updated_at', now,
    'expires_at', expires_at)
  redis.call('ZADD', k('expiry'), expires_at, id)
end

local function drop_items(id)
  redis.call('DEL', k('items', id))
  redis.call('HSET', k('job', id), 'done', 0, 'failed', 0, 'skipped', 0)
end

-- The task of a fencing token, if the lease holding it still owns a running job.
local function owned(id, owner, token)
  local j = hgetall(k('job', id))
  if j == nil or j.status ~= 'running' then return nil end
  local c = j['tok:' .. token]
  if c == nil then return nil end
  local t = hgetall(k('task', id, c))
  if t == nil or t.state ~= 'running' or t.owner ~= owner or t.token ~= token then
    return nil
  end
  return j, c, t
end

-- Images being worked on now ({field, name} each): what a crash of this claim counts against.
local function start_items(id, c, token, items)
  for _, it in ipairs(items) do
    local crashes = 0
    local old = redis.call('HGET', k('inflight', id), it[1])
    if old then crashes = cjson.decode(old).crashes end
    redis.call('HSET', k('inflight', id), it[1],
      cjson.encode({name = it[2], crashes = crashes, token = token, chunk = c}))
  end
end

-- Record finished images once each; returns {succeeded=, failed=, skipped=} of the new ones.
local function add_items(id, items)
  local added = {succeeded = 0, failed = 0, skipped = 0}
  for _, it in ipairs(items) do
    local field, body, status = it[1], it[2], it[3]
    if redis.call('HSETNX', k('items', id), field, body) == 1 then
      added[status] = added[status] + 1
    end
    redis.call('HDEL', k('inflight', id), field)
  end
  redis.call('HINCRBY', k('job', id), 'done', added.succeeded)
  redis.call('HINCRBY', k('job', id), 'failed', added.failed)
  redis.call('HINCRBY', k('job', id), 'skipped', added.skipped)
  return added
end

-- A claim of task c ended without its worker: each image it had in flight gets a crash, one at
-- the limit is given up, and a claim that moved nothing forward is an attempt.
local function count_crash(id, j, c, t, max_crashes)
  local given_up = {}
  local flat = redis.call('HGETALL', k('inflight', id))
  for i = 1, #flat, 2 do
    local entry = cjson.decode(flat[i + 1])
    if entry.token == t.token then
      entry.crashes = entry.crashes + 1
      if entry.crashes >= max_crashes then
        local detail = 'the image stopped its worker ' .. entry.crashes ..
          ' times (a crash, out of memory or a kill); it was given up'
        given_up[#given_up + 1] = {flat[i], cjson.encode({name = entry.name, status = 'failed',
          error = {code = 'internal_error', detail = detail, crashes = entry.crashes}}), 'failed'}
      else
        redis.call('HSET', k('inflight', id), flat[i], cjson.encode(entry))
      end
    end
  end
  local added = add_items(id, given_up)
  local progress = num(t.progress) + added.failed
  local attempts = 0
  if progress <= num(t.claim_progress) then attempts = num(t.attempts) + 1 end
  redis.call('HSET', k('task', id, c), 'progress', progress, 'attempts', attempts)
  redis.call('HSET', k('job', id), 'attempts', attempts)
end

local function finish_canceled(id, j, now, expires_at)
  drop_items(id)
  end_job(id, j, 'canceled', now, expires_at)
  emit(id, 'job.canceled', now)
end

-- A task whose worker is gone (its lease expired, or it handed the task back).
local function requeue(id, j, c, t, now, crashed, max_crashes)
  stop_running(id, j, c)
  if crashed then count_crash(id, j, c, t, max_crashes) end
  enqueue_task(id, j, c)
  redis.call('HSET', k('job', id), 'updated_at', now)
  if num(j.running) == 0 then set_status(id, j, 'queued') end
end

local function reap(now, limit, max_crashes, retention)
  local reaped = 0
  local due = redis.call('ZRANGEBYSCORE', k('leases'), '-inf', '(' .. now, 'LIMIT', 0, limit)
  for _, member in ipairs(due) do
    local id, c = string.match(member, '^(.*):([^:]+)$')
    local j = hgetall(k('job', id))
    local t = hgetall(k('task', id, c))
    redis.call('ZREM', k('leases'), member)
    if j ~= nil and t ~= nil and t.state == 'running' then
      reaped = reaped + 1
      if j.cancel_requested == '1' then
        finish_canceled(id, j, now, tostring(num(now) + num(retention)))
      else
        requeue(id, j, c, t, now, true, max_crashes)
      end
    end
  end
  return reaped
end

local function lease_reply(id, j, c, t, expires)
  local suspects = {}
  local flat = redis.call('HGETALL', k('inflight', id))
  for i = 1, #flat, 2 do
    local entry = cjson.decode(flat[i + 1])
    if entry.crashes > 0 and entry.chunk == c then suspects[#suspects + 1] = flat[i] end
  end
  return cjson.encode({id = id, chunk = c, chunks = num(j.chunks), token = t.token,
    expires = expires, attempts = num(t.attempts), suspects = suspects, spans = t.spans or ''})
end

local function start_task(id, j, c, owner, now, expires)
  local token = tostring(redis.call('HINCRBY', k('job', id), 'tokens', 1))
  local t = hgetall(k('task', id, c)) or {}
  redis.call('HSET', k('task', id, c), 'state', 'running', 'owner', owner, 'token', token,
    'expires', expires, 'claim_progress', num(t.progress))
  redis.call('HSET', k('job', id), 'tok:' .. token, c, 'updated_at', now)
  redis.call('ZADD', k('leases'), expires, id .. ':' .. c)
  redis.call('HINCRBY', k('busy'), j.tenant, 1)
  j.running = tostring(redis.call('HINCRBY', k('job', id), 'running', 1))
  t.token = token
  t.attempts = t.attempts or '0'
  if j.status == 'queued' then
    set_status(id, j, 'running')
    if j.started_at == nil then redis.call('HSET', k('job', id), 'started_at', now) end
    emit(id, 'job.progress', now)
  end
  return t
end

local function delete_job(id, j, now)
  for _, c in ipairs(task_names(j)) do redis.call('DEL', k('task', id, c)) end
  redis.call('DEL', k('job', id), k('items', id), k('inflight', id))
  redis.call('ZREM', k('jobs', j.tenant), id)
  redis.call('ZREM', k('expiry'), id)
  redis.call('HINCRBY', k('counts'), j.status, -1)
  if j.idem ~= nil and redis.call('HGET', j.idem, 'job_id') == id then
    redis.call('DEL', j.idem)
    redis.call('ZREM', k('idem'), j.idem)
  end
  emit(id, 'job.deleted', now, {id = id, tenant = j.tenant})
end

-- ---------------------------------------------------------------------------------------------
if op == 'submit' then
  local id, tenant = a.id, a.tenant
  local seq = redis.call('INCR', k('seq'))
  local chunks = a.chunks
  redis.call('HSET', k('job', id), 'id', id, 'tenant', tenant, 'options', a.options,
    'created_at', a.now, 'updated_at', a.now, 'total', a.total, 'images', a.total,
    'done', 0, 'failed', 0, 'skipped', 0, 'cancel_requested', 0, 'attempts', 0, 'seq', seq,
    'inputs', a.inputs, 'chunks', #chunks, 'running', 0, 'tokens', 0)
  if a.callback_url ~= cjson.null then
    redis.call('HSET', k('job', id), 'callback_url', a.callback_url)
  end
  local j = {tenant = tenant, seq = tostring(seq), chunks = tostring(#chunks)}
  set_status(id, j, 'queued')
  for c, spans in ipairs(chunks) do
    redis.call('HSET', k('task', id, c - 1), 'spans', spans, 'attempts', 0, 'progress', 0)
    enqueue_task(id, j, tostring(c - 1))
  end
  redis.call('ZADD', k('jobs', tenant), seq, id)
  redis.call('HINCRBY', k('depth'), tenant, a.total)
  redis.call('HINCRBY', k('active'), tenant, 1)
  if a.idem ~= cjson.null then
    redis.call('HSET', a.idem.key, 'state', 'done', 'fingerprint', a.idem.fingerprint,
      'status_code', a.idem.status_code, 'body', a.idem.body, 'location', a.idem.location,
      'job_id', id)
    redis.call('HSET', k('job', id), 'idem', a.idem.key)
  end
  return seq

elseif op == 'claim' then
  reap(a.now, 100, a.max_crashes, a.retention)
  local rounds = redis.call('LLEN', k('ring'))
  for _ = 1, rounds do
    local tenant = redis.call('LMOVE', k('ring'), k('ring'), 'LEFT', 'RIGHT')
    if tenant == false then return false end
    local queue = k('tq', tenant)
    local found = nil
    if a.cap <= 0 or num(redis.call('HGET', k('busy'), tenant)) < a.cap then
      while found == nil do
        local popped = redis.call('ZPOPMIN', queue)
        if #popped == 0 then break end
        local id, c = string.match(popped[1], '^(.*):([^:]+)$')
        local j = hgetall(k('job', id))
        local t = hgetall(k('task', id, c))
        if j ~= nil and t ~= nil and t.state == 'queued'
            and (j.status == 'queued' or j.status == 'running') then
          if num(t.attempts) >= a.max_attempts then
            -- A dead letter: claims of this task kept ending without progress.
            redis.call('HSET', k('job', id), 'error', cjson.encode({code = 'internal_error',
              detail = 'processing failed ' .. t.attempts .. ' times (its worker stopped)',
              attempts = num(t.attempts)}))
            end_job(id, j, 'failed', a.now, a.final_expires)
            redis.call('ZADD', k('dead'), a.now, id)
            emit(id, 'job.failed', a.now)
          else
            found = {id, j, c}
          end
        end
      end
    end
    if redis.call('ZCARD', queue) == 0 then redis.call('LREM', k('ring'), 0, tenant) end
    if found ~= nil then
      local id, j, c = found[1], found[2], found[3]
      local t = start_task(id, j, c, a.owner, a.now, a.expires)
      return lease_reply(id, j, c, t, a.expires)
    end
  end
  return false

elseif op == 'reap' then
  return reap(a.now, 1000, a.max_crashes, a.retention)

elseif op == 'renew' then
  local j, c = owned(a.id, a.owner, a.token)
  if j == nil then return {0, 0} end
  redis.call('HSET', k('task', a.id, c), 'expires', a.expires)
  redis.call('ZADD', k('leases'), a.expires, a.id .. ':' .. c)
  return {1, num(j.cancel_requested)}

elseif op == 'start_items' then
  local j, c = owned(a.id, a.owner, a.token)
  if j == nil then return 0 end
  start_items(a.id, c, a.token, a.items)
  return 1

elseif op == 'progress' then
  local j, c = owned(a.id, a.owner, a.token)
  if j == nil then return 0 end
  local added = add_items(a.id, a.items)
  start_items(a.id, c, a.token, a.started)
  redis.call('HINCRBY', k('task', a.id, c), 'progress',
    added.succeeded + added.failed + added.skipped)
  redis.call('HSET', k('job', a.id), 'updated_at', a.now)
  if a.total ~= cjson.null then redis.call('HSET', k('job', a.id), 'total', a.total) end
  if a.expires ~= cjson.null then
    redis.call('HSET', k('task', a.id, c), 'expires', a.expires)
    redis.call('ZADD', k('leases'), a.expires, a.id .. ':' .. c)
  end
  if a.notify then emit(a.id, 'job.progress', a.now) end
  return 1

elseif op == 'finish' then
  -- complete / fail / cancel acknowledged, from any task's lease.
  local j, c = owned(a.id, a.owner, a.token)
  if j == nil then return 0 end
  if a.status ~= 'canceled' and j.cancel_requested == '1' then return 0 end
  if a.status == 'canceled' then drop_items(a.id) end
  if a.status == 'succeeded' then
    redis.call('HSET', k('job', a.id), 'total', num(j.done) + num(j.failed) + num(j.skipped))
  end
  if a.error ~= cjson.null then redis.call('HSET', k('job', a.id), 'error', a.error) end
  if a.result_key ~= cjson.null then
    redis.call('HSET', k('job', a.id), 'result_key', a.result_key, 'result_digest',
      a.result_digest, 'result_size', a.result_size)
  end
  end_job(a.id, j, a.status, a.now, a.final_expires)
  emit(a.id, 'job.' .. a.status, a.now)
  return 1

elseif op == 'finish_chunk' then
  -- One chunk is done; the last one turns into the job's assembly task, leased to the caller.
  local j, c = owned(a.id, a.owner, a.token)
  if j == nil then return false end
  stop_running(a.id, j, c)
  redis.call('HSET', k('task', a.id, c), 'state', 'done')
  local done = redis.call('HINCRBY', k('job', a.id), 'chunks_done', 1)
  if done < num(j.chunks) then return '' end
  local t = start_task(a.id, j, 'a', a.owner, a.now, a.expires)
  return lease_reply(a.id, j, 'a', t, a.expires)

elseif op == 'release' then
  local j, c, t = owned(a.id, a.owner, a.token)
  if j == nil then return 0 end
  requeue(a.id, j, c, t, a.now, a.crashed, a.max_crashes)
  return 1

elseif op == 'cancel' then
  local j = hgetall(k('job', a.id))
  if not visible(j, a.tenant, a.now) then return cjson.encode({missing = true}) end
  if j.status == 'succeeded' or j.status == 'failed' then
    return cjson.encode({conflict = j.status})
  end
  if j.status == 'queued' then
    redis.call('HSET', k('job', a.id), 'cancel_requested', 1)
    end_job(a.id, j, 'canceled', a.now, a.final_expires)
    emit(a.id, 'job.canceled', a.now)
  elseif j.status == 'running' and j.cancel_requested ~= '1' then
    redis.call('HSET', k('job', a.id), 'cancel_requested', 1, 'updated_at', a.now)
  end
  return cjson.encode({job = hgetall(k('job', a.id))})

elseif op == 'delete' then
  local j = hgetall(k('job', a.id))
  if not visible(j, a.tenant, a.now) then return cjson.encode({missing = true}) end
  if j.status == 'running' then return cjson.encode({conflict = j.status}) end
  if j.status == 'queued' then
    for _, c in ipairs(task_names(j)) do redis.call('ZREM', k('tq', j.tenant), a.id .. ':' .. c) end
    redis.call('HINCRBY', k('depth'), j.tenant, -num(j.images))
    redis.call('HINCRBY', k('active'), j.tenant, -1)
  end
  delete_job(a.id, j, a.now)
  return cjson.encode({job = j})

elseif op == 'expire' then
  local gone = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('expiry'), '-inf', a.now, 'LIMIT', 0, a.limit)) do
    local j = hgetall(k('job', id))
    redis.call('ZREM', k('expiry'), id)
    if j ~= nil then
      delete_job(id, j, a.now)
      gone[#gone + 1] = j
    end
  end
  return cjson.encode(gone)

elseif op == 'idempotency_begin' then
  local record = hgetall(a.key)
  local expired = record ~= nil and (num(record.created_at) <= num(a.now) - num(a.keep)
    or (record.state == 'in_flight' and num(record.created_at) <= num(a.now) - num(a.stale)))
  if record == nil or expired then
    redis.call('DEL', a.key)
    redis.call('HSET', a.key, 'state', 'in_flight', 'created_at', a.now)
    redis.call('ZADD', k('idem'), a.now, a.key)
    return 'new'
  end
  if record.state == 'in_flight' then return 'in_flight' end
  return cjson.encode(record)

elseif op == 'idempotency_abort' then
  if redis.call('HGET', a.key, 'state') == 'in_flight' then
    redis.call('DEL', a.key)
    redis.call('ZREM', k('idem'), a.key)
  end
  return 1

elseif op == 'idempotency_expire' then
  local old = redis.call('ZRANGEBYSCORE', k('idem'), '-inf', a.before)
  for _, key in ipairs(old) do redis.call('DEL', key) end
  redis.call('ZREMRANGEBYSCORE', k('idem'), '-inf', a.before)
  return #old

elseif op == 'ack' then
  -- Move a consumer's position forward only.
  local current = redis.call('HGET', k('consumers'), a.consumer)
  local function parse(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
  end
  if current then
    local cm, cs = parse(current)
    local nm, ns = parse(a.position)
    if nm < cm or (nm == cm and ns <= cs) then return 0 end
  end
  redis.call('HSET', k('consumers'), a.consumer, a.position)
  return 1

elseif op == 'trim_events' then
  -- Stream ids are the server's own time: the age cut is measured with that clock alone.
  local now = redis.call('TIME')
  local cut = (tonumber(now[1]) - num(a.keep)) * 1000
  if cut > 0 then return redis.call('XTRIM', k('events'), 'MINID', '~', cut) end
  return 0
end
return redis.error_reply('unknown operation ' .. op)
