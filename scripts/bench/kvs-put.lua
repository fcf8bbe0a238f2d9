-- wrk: PUT of a random string key among 100k (16 bytes, as for GET) to a
-- 32-byte value on kvs-server; answered once durable as --durability says.
-- Prints the 99th percentile of latency (µs) as its last line.
local value = string.rep("v", 32)
math.randomseed(os.time())
wrk.method = "PUT"

request = function()
  return wrk.format(nil, string.format("/kvs/v1-0-0/str/k%015d", math.random(0, 99999)), nil, value)
end

done = function(summary, latency, requests)
  io.write(string.format("p99_us %d\n", latency:percentile(99)))
end
