-- POST a forgot-password form, each request for a different existing
-- account (load{n}@load.test), counting answers by status.
-- args: FIELD CSRF_FIELD CSRF_VALUE COOKIE ACCOUNTS (wrk ... -s forgot.lua URL -- ARGS)
local threads = {}
local tid = 0
function setup(thread)
  thread:set("tid", tid)
  tid = tid + 1
  table.insert(threads, thread)
end
function init(args)
  field, csrf_field, csrf, cookie = args[1], args[2], args[3], args[4]
  accounts = tonumber(args[5]) or 200000
  counter = 0
  ok, shed, other = 0, 0, 0
end
function request()
  counter = counter + 1
  local n = (counter * 2 + tid) % accounts
  local body = field .. "=load" .. n .. "%40load.test&" .. csrf_field .. "=" .. csrf
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie}, body)
end
function response(status, headers, body)
  if status == 302 or status == 303 then ok = ok + 1
  elseif status == 503 then shed = shed + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local o, s, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); s = s + t:get("shed"); x = x + t:get("other")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("accepted %d (%.0f/s), 503 %d (%.0f/s), other %d, answered %.0f/s\n", o, o / secs, s, s / secs, x, (o + s + x) / secs))
end
