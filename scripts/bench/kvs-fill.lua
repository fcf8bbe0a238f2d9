-- wrk: PUT of the 100k string keys kvs-get.lua reads, in order and round
-- again, each to a 32-byte value: fills them all in a few seconds.
local value = string.rep("v", 32)
local i = 0
wrk.method = "PUT"

request = function()
  i = i + 1
  return wrk.format(nil, string.format("/kvs/v1-0-0/str/k%015d", i % 100000), nil, value)
end
