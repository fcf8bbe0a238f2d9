-- wrk: PUT of a million string keys (e and 7 digits), each once, with a
-- TTL of 50 s; past the millionth, the last is put again.
local i = -1
wrk.method = "PUT"

request = function()
  i = math.min(i + 1, 999999)
  return wrk.format(nil, string.format("/kvs/v1-0-0/str/e%07d?ttl=50", i), nil, "v")
end
