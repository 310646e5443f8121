-- wrk script: POST one fixed JSON body (the file named by BENCH_BODY) with a bearer key
-- (BENCH_KEY, optional) and print a JSON summary line, for bench/endpoints.sh.
local file = assert(io.open(os.getenv("BENCH_BODY"), "r"))
local key = os.getenv("BENCH_KEY") or ""

wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

function done(summary, latency, requests)
  local s, e = summary, summary.errors
  local dur = s.duration / 1e6
  io.write(string.format(
    'WRKJSON {"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d}\n',
    s.requests, s.requests / dur, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
