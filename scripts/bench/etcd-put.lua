-- wrk: a put of a random key among 100k (16 bytes) with a 32-byte value,
-- through etcd's gRPC gateway (POST /v3/kv/put, base64 in JSON). Every put
-- is committed to etcd's write-ahead log (fsync) before it is answered.
local bit = require("bit")
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
    local len = math.min(3, #s - i + 1)
    for j = 0, 3 do
      if j <= len then
        local at = bit.band(bit.rshift(n, 18 - 6 * j), 63) + 1
        out[#out + 1] = alphabet:sub(at, at)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

local value = base64(string.rep("v", 32))
local bodies = {}
for i = 0, 99999 do
  bodies[i] = string.format('{"key":"%s","value":"%s"}', base64(string.format("k%015d", i)), value)
end
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  return wrk.format(nil, "/v3/kv/put", nil, bodies[math.random(0, 99999)])
end
