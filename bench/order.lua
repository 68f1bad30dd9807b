-- wrk: orders from 1000 customers, each with its own order id: the run
-- (CRM_BENCH_RUN, the time in ns bench/run.sh starts each wrk at), the
-- thread and a sequence, so that no run repeats an earlier run's order
-- and crm.decide_order() never takes its cheap repeat exit.  With
-- CRM_BENCH_DELAY_MS set, every connection waits that long between
-- requests, which holds the rate steady for the latency rows.
local counter = 0
local run = os.getenv("CRM_BENCH_RUN") or tostring(os.time())
local delay_ms = tonumber(os.getenv("CRM_BENCH_DELAY_MS") or "0")

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end

function init(args)
    seq = 0
    math.randomseed(os.time() + id)
    stamp = string.format("%s-%d-%d", run, os.time(), math.random(1, 1e9))
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    seq = seq + 1
    local order = string.format("B-%s-%d-%d", stamp, id, seq)
    local who = math.random(1, 1000)
    local body = string.format('{"order_id":"%s","customer":{"email":' ..
        '"customer%d@example.com","name":"Customer %d"},"total":49.90}',
        order, who, who)
    return wrk.format(nil, nil, nil, body)
end

function delay()
    return delay_ms
end
