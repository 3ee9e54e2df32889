"""Lua scripts of the step bookkeeping: each step moves atomically, in one round trip.

Every write sets an expiry, and nothing is written once the run is final or
its ticket has expired, so a late step never re-creates a run's state.
"""

# KEYS: run, final, progress, results, states, worker steps.
# ARGV: step key, branch key, task id, token, with ticket ("1"/"0"), expiry,
# started (JSON: worker, queue), entry field, entry (JSON); then the method
# of a request the step sends before anything else runs ("" for none) and
# the entry noting it as sent: on a first attempt, it is noted as sent here,
# as MARK_SENT would, saving the step a round trip.
# Returns {"final"}, {"finished", ticket, result, state},
# {"busy", started}, or {"run", ticket, attempts, state, note}.
BEGIN_STEP = """
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HDEL', KEYS[6], ARGV[8])
    return {'final'}
end
local ticket = ''
if ARGV[5] == '1' then ticket = redis.call('GET', KEYS[1]) end
local states = redis.call('HMGET', KEYS[5], ARGV[2], 'initial')
local state = states[1] or states[2] or '{}'
local result = redis.call('HGET', KEYS[4], ARGV[1])
if result then
    redis.call('HDEL', KEYS[6], ARGV[8])
    return {'finished', ticket, result, state}
end
local owner_field = ARGV[1] .. ':owner'
local owner = redis.call('HGET', KEYS[3], owner_field)
local attempts = tonumber(redis.call('HGET', KEYS[3], ARGV[1] .. ':attempts') or '0')
if owner ~= ARGV[3] then
    if owner and (ARGV[4] == '' or owner ~= 'token:' .. ARGV[4]) then
        redis.call('HDEL', KEYS[6], ARGV[8])
        return {'busy', redis.call('HGET', KEYS[3], ARGV[1] .. ':started') or '{}'}
    end
    redis.call('HSET', KEYS[3], owner_field, ARGV[3])
    attempts = redis.call('HINCRBY', KEYS[3], ARGV[1] .. ':attempts', 1)
    redis.call('HSET', KEYS[3], ARGV[1] .. ':started', ARGV[7])
    redis.call('EXPIRE', KEYS[3], ARGV[6])
end
local entry = ARGV[9]
if (ARGV[10] or '') ~= '' and attempts == 1 then
    redis.call('HSET', KEYS[3], ARGV[1] .. ':sent', ARGV[10])
    entry = ARGV[11]
end
redis.call('HSET', KEYS[6], ARGV[8], entry)
redis.call('EXPIRE', KEYS[6], ARGV[6])
local note = redis.call('HGET', KEYS[3], ARGV[1] .. ':note') or ''
return {'run', ticket, attempts, state, note}
"""

# KEYS: run, final, results, states, progress, worker steps, branches done.
# ARGV: step key, result, branch key, state, expiry, next step key ("" for
# none), next queue, task id, entry field, entry ("" to drop it), "1" when
# the branch ends with this step; then, when this worker runs the next step
# itself (inlined), its holder id, started (JSON: worker, queue), entry field,
# entry (ARGV[12] "" otherwise) and the method its request goes out with when
# nothing runs before it (no pre-request script: noted as sent here, as
# MARK_SENT would, so the step needs no round trip of its own; "" otherwise).
# Returns {recorded, handed, ended}: ended is how many branches have ended
# when this step ended its branch (-1 otherwise, or when nothing was
# recorded); a retried call of the same task answers as the first one did.
# An inlined next step is claimed here as begin_step would (owner, attempts,
# started, the worker's entry), so the worker holds it from the same instant
# the step before is recorded: handed is 1 only when the claim is this holder's.
FINISH_STEP = """
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HDEL', KEYS[6], ARGV[9])
    return {0, 0, -1}
end
-- Only the delivery that holds the step records it: one taken over (its worker was
-- taken for lost, the step sent again) writes nothing when it comes back.
if redis.call('HGET', KEYS[5], ARGV[1] .. ':owner') ~= ARGV[8] then
    redis.call('HDEL', KEYS[6], ARGV[9])
    return {0, 0, -1}
end
local finisher = ARGV[1] .. ':finisher'
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 1 then
    redis.call('HSET', KEYS[5], finisher, ARGV[8])
elseif redis.call('HGET', KEYS[5], finisher) ~= ARGV[8] then
    redis.call('HDEL', KEYS[6], ARGV[9])
    return {0, 0, -1}
end
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
local handed = 0
local inline = ARGV[12] or ''
if ARGV[6] ~= '' then
    if redis.call('HSETNX', KEYS[5], ARGV[6] .. ':queue', ARGV[7]) == 1 then
        redis.call('HSET', KEYS[5], ARGV[6] .. ':handed', ARGV[8])
        handed = 1
        if inline ~= '' then
            redis.call('HSET', KEYS[5], ARGV[6] .. ':owner', inline,
                ARGV[6] .. ':attempts', 1, ARGV[6] .. ':started', ARGV[13])
            if ARGV[16] ~= '' then redis.call('HSET', KEYS[5], ARGV[6] .. ':sent', ARGV[16]) end
        end
    elseif redis.call('HGET', KEYS[5], ARGV[6] .. ':handed') == ARGV[8] then
        handed = 1
        if inline ~= '' and redis.call('HGET', KEYS[5], ARGV[6] .. ':owner') ~= inline then
            handed = 0
        end
    end
end
for _, key in ipairs({KEYS[3], KEYS[4], KEYS[5]}) do
    redis.call('EXPIRE', key, ARGV[5])
end
if handed == 1 and inline ~= '' then
    redis.call('HDEL', KEYS[6], ARGV[9])
    redis.call('HSET', KEYS[6], ARGV[14], ARGV[15])
    redis.call('EXPIRE', KEYS[6], ARGV[5])
elseif handed == 1 and ARGV[10] ~= '' then
    redis.call('HSET', KEYS[6], ARGV[9], ARGV[10])
else
    redis.call('HDEL', KEYS[6], ARGV[9])
end
local ended = -1
if ARGV[11] == '1' then
    redis.call('SADD', KEYS[7], ARGV[3])
    redis.call('EXPIRE', KEYS[7], ARGV[5])
    ended = redis.call('SCARD', KEYS[7])
end
return {1, handed, ended}
"""

# KEYS: run, final, progress, worker steps. ARGV: step key, method, expiry,
# entry field, entry, task id. Notes that the step's request goes out (unsafe
# wins); returns 1, else 0 when the run ended, -1 when the step is no longer
# this delivery's (taken over): then its request must not go out.
MARK_SENT = """
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
end
if redis.call('HGET', KEYS[3], ARGV[1] .. ':owner') ~= ARGV[6] then
    return -1
end
redis.call('HSET', KEYS[3], ARGV[1] .. ':sent', ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[3])
return 1
"""

# KEYS: queues to clean. ARGV: the run id. Removes the run's waiting
# messages (their argsrepr names the run) from each queue.
DROP_MESSAGES = """
local removed = 0
for _, queue in ipairs(KEYS) do
    if redis.call('TYPE', queue)['ok'] == 'list' then
        for _, message in ipairs(redis.call('LRANGE', queue, 0, -1)) do
            if string.find(message, ARGV[1], 1, true) then
                removed = removed + redis.call('LREM', queue, 0, message)
            end
        end
    end
end
return removed
"""

# KEYS: progress. ARGV: step key, expected owner ("" for none), token, note,
# expiry. Hands the step to the delivery carrying the token, unless someone
# else took it meanwhile (two resolvers, or the step's own worker came back).
SEND_AGAIN = """
local owner = redis.call('HGET', KEYS[1], ARGV[1] .. ':owner') or ''
if owner ~= ARGV[2] then
    return 0
end
redis.call('HSET', KEYS[1], ARGV[1] .. ':owner', 'token:' .. ARGV[3], ARGV[1] .. ':note', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
