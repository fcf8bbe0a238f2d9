-- wrk: PUT of a random string key among 100k (16 bytes, as for GET) to a
-- 32-byte value on kvs-server; answered once durable as --durability says.
local value = string.rep("v", 32)
math.randomseed(os.time())
wrk.method = "PUT"

request = function()
  return wrk.format(nil, string.format("/kvs/v1-0-0/str/k%015d", math.random(0, 99999)), nil, value)
end
